"""The Faust app of the agents (`cda agents run`): one agent over `company_data`, keyed by company.

At-least-once with idempotent effects, agent concurrency 1 (faust-streaming #606: concurrency > 1 can
commit past an unfinished record), no exactly-once (its open bugs); scale by partitions and workers.
Units of one job run concurrently inside the job. Faust is started programmatically, never through its
click command line (faust-streaming pins click<8.4, which the ML stack's huggingface-hub rejects).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import faust

from core.settings import Settings
from streams.errors import StreamsError
from streams.service import AgentService
from topics.connection import topic_name


class AgentsError(StreamsError):
    """The agents could not be started."""


def broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()]


def create_app(settings: Settings, service: AgentService) -> faust.App:
    (settings.home / "agents").mkdir(parents=True, exist_ok=True)  # Faust makes only the last folder of datadir
    app = faust.App(
        service.group_id,
        broker=broker_urls(settings.kafka_bootstrap),
        store="memory://",
        datadir=str(settings.home / "agents" / service.group_id),  # not `<group>-data` in the working directory
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

    @app.timer(interval=min(60.0, settings.session_idle_s / 4))  # type: ignore[misc]
    async def close_idle_sessions() -> None:
        await service.close_idle_sessions(int(time.time() * 1000))

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


@contextmanager
def agents_in_thread(settings: Settings, service: AgentService, start_timeout_s: float = 60.0) -> Iterator[faust.App]:
    """The agents on their own event loop in a background thread, for tests, benchmarks and the demo."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            holder["app"] = create_app(settings, service)
            loop.run_until_complete(holder["app"].start())
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            holder["error"] = exc
            started.set()
            return
        started.set()
        loop.run_forever()

    service.start()
    thread = threading.Thread(target=run, name="faust-agents", daemon=True)
    thread.start()
    if not started.wait(start_timeout_s) or "error" in holder:
        raise AgentsError(f"the agents did not start: {holder.get('error', 'timed out')}")
    try:
        yield holder["app"]
    finally:
        asyncio.run_coroutine_threadsafe(holder["app"].stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
