"""The Faust app of the agents (`cda agents run`): one agent over `company_data`, keyed by company.

At-least-once with idempotent effects, agent concurrency 1 (faust-streaming #606: concurrency > 1 can
commit past an unfinished record), no exactly-once (its open bugs); scale by partitions and workers.
Units of one job run concurrently inside the job. Faust is started programmatically, never through its
click command line (faust-streaming pins click<8.4, which the ML stack's huggingface-hub rejects).
"""

from __future__ import annotations

from typing import Any

import faust

from cda.settings import Settings
from streams.service import AgentService
from topics.connection import topic_name


def broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()]


def create_app(settings: Settings, service: AgentService) -> faust.App:
    app = faust.App(
        service.group_id,
        broker=broker_urls(settings.kafka_bootstrap),
        store="memory://",
        web_enabled=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=0.5,
        broker_commit_every=50,
        stream_wait_empty=False,
        producer_acks=-1,
        loghandlers=[],
    )
    requests = app.topic(topic_name(settings, "company_data"), key_serializer="raw", value_serializer="raw",
                         internal=False)

    @app.agent(requests, concurrency=1)
    async def process(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            await service.handle(event.value, msg.topic, msg.partition, msg.offset, msg.key, int(msg.timestamp * 1000))

    @app.on_before_shutdown.connect  # type: ignore[misc]
    async def _close(app: faust.App, **_: Any) -> None:
        await service.aclose()

    return app


def run_agents(settings: Settings, loglevel: str = "warning") -> None:
    """Start the tables, then the Faust worker in the foreground until SIGINT/SIGTERM."""
    service = AgentService(settings)
    service.start()
    app = create_app(settings, service)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
