"""The Faust app of the agents (`cda agents run`): one agent over `company_data`, keyed by company.

At-least-once with idempotent effects, no exactly-once (its open bugs); scale by partitions and workers.
One Faust agent (concurrency 1) reads the requests in log order and hands each to the fair scheduler
(`streams.scheduler`), which runs many companies' jobs at once. Acknowledgements are manual and in offset
order (`streams.acks`): a record is acknowledged once its job and the jobs of every record read before it on
its partition have ended, so a commit never passes an unfinished record (Faust's own commit would: it
commits the first run of acknowledged offsets wherever it starts, which is faust-streaming #606 with agent
concurrency > 1). A job read in an earlier consumer generation acknowledges nothing: its record comes again
from the committed offset, and its ended job returns at once. Nothing is acknowledged mid-rebalance.
Faust is started programmatically, never through its click command line (faust-streaming pins click<8.4,
which the ML stack's huggingface-hub rejects).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import faust

from core.settings import Settings
from streams.acks import OrderedAcks
from streams.errors import StreamsError
from streams.job_run import Model
from streams.service import AgentService
from topics.connection import topic_name
from topics.credentials import MECHANISM, login

log = logging.getLogger(__name__)


class AgentsError(StreamsError):
    """The agents could not be started."""


def broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()]


def broker_credentials(settings: Settings) -> faust.SASLCredentials | None:
    """The agents' SASL/SCRAM login, as aiokafka (under Faust) presents it; None when the broker asks for none."""
    credentials = login(settings)
    if credentials is None:
        return None
    return faust.SASLCredentials(username=credentials.principal, password=credentials.password, mechanism=MECHANISM)


def create_app(settings: Settings, service: AgentService) -> faust.App:
    (settings.home / "agents").mkdir(parents=True, exist_ok=True)  # Faust makes only the last folder of datadir
    app = faust.App(
        service.group_id,
        broker=broker_urls(settings.kafka_bootstrap),
        broker_credentials=broker_credentials(settings),
        store="memory://",
        datadir=str(settings.home / "agents" / service.group_id),  # not `<group>-data` in the working directory
        web_enabled=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=0.5,
        broker_commit_every=50,
        broker_session_timeout=settings.agents_session_timeout_s,
        broker_heartbeat_interval=settings.agents_session_timeout_s / 10,
        stream_wait_empty=False,
        producer_acks=-1,
        loghandlers=[],
    )
    requests = app.topic(topic_name(settings, "company_data"), key_serializer="raw", value_serializer="raw",
                         internal=False)

    scheduler = service.scheduler
    # one per app, not per agent run: an agent Faust restarts after an error finds the records still open (a
    # fresh one would acknowledge later offsets past a record that never ended)
    reading: list[Any] = []  # the agent's current stream, whose ack also tells Faust's sensors

    async def ack(event: Any) -> None:
        await reading[-1].ack(event)

    acks = OrderedAcks(ack, lambda: app.consumer_generation_id, lambda: bool(app.rebalancing))

    @app.agent(requests, concurrency=1)
    async def process(stream: Any) -> None:
        manual = stream.noack()
        reading[:] = [manual]
        async for event in manual.events():
            msg = event.message
            acks.read(msg.tp, msg.offset, event, msg.generation_id)
            await acks.flush()  # ends that came during a rebalance

            async def finish(tp: Any = msg.tp, offset: int = msg.offset, generation: int = msg.generation_id) -> None:
                await acks.ended(tp, offset, generation)

            work = await service.admit(event.value, msg.topic, msg.partition, msg.offset, msg.key,
                                       int(msg.timestamp * 1000))
            if work is None:  # dead-lettered
                await finish()
                continue
            work.finish, work.origin = finish, msg.tp
            await scheduler.submit(work)

    @app.timer(interval=1.0)  # type: ignore[misc]
    async def acknowledge_quiet_partitions() -> None:
        """Ends that came mid-rebalance, on a partition that reads nothing more: acknowledged all the same."""
        if reading:
            await acks.flush()

    @app.on_partitions_revoked.connect  # type: ignore[misc]
    async def _revoked(app: faust.App, revoked: set[Any], **_: Any) -> None:
        dropped = scheduler.discard(lambda work: work.origin not in revoked)
        if dropped:
            log.info("%d jobs of revoked partitions dropped or stopped; the new owner resumes them from their logs",
                     dropped)

    @app.timer(interval=min(60.0, settings.session_idle_s / 4))  # type: ignore[misc]
    async def close_idle_sessions() -> None:
        try:
            await service.close_idle_sessions(int(time.time() * 1000))
            await service.fold_closed_sessions()
        except Exception:  # noqa: BLE001 - the broker away: the next tick tries again (closed ones: after a restart)
            log.exception("closing or folding sessions failed")

    @app.on_before_shutdown.connect  # type: ignore[misc]
    async def _close(app: faust.App, **_: Any) -> None:
        await service.aclose()

    return app


def run_agents(settings: Settings, loglevel: str = "warning", model: Model | None = None) -> None:
    """Start the tables, then the Faust worker in the foreground until SIGINT/SIGTERM (`model`: the gateway's
    unless given, e.g. a benchmark's stand-in)."""
    service = AgentService(settings, model=model)
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
