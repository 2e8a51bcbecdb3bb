"""Rebuild while events keep arriving, and a store outage in the middle of a stream: nothing lost, nothing doubled."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from core.settings import Settings
from projections.catalog import JOBS, TOOL_CALLS
from projections.migrate import migrate
from projections.rebuild import IGNORED, NOT_AN_EVENT, NOT_FOLDED, REFUSED, rebuild
from projections.runner import ProjectionRunner
from projections.store import ProjectionStore
from tests.helpers import eventually
from tests.projections.test_projections import drain, job_story
from topics.connection import topic_name
from topics.events import Event
from topics.producer import EventProducer
from topics.serde import SingleObjectSerde

pytestmark = pytest.mark.kafka
Catalog = Callable[..., Settings]


class Stream:
    """Produces job stories in the background, one company-job at a time, until stopped."""

    def __init__(self, settings: Settings, jobs_per_tick: int = 5, tick_s: float = 0.05) -> None:
        self.settings = settings
        self.jobs_per_tick = jobs_per_tick
        self.tick_s = tick_s
        self.events = 0
        self._next = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def batch(self, jobs: int) -> list[Event]:
        out = []
        for _ in range(jobs):
            n = self._next
            self._next += 1
            out += job_story(f"c{n % 7}", f"job{n}", fail_call=n % 5 == 0, fail_job=n % 10 == 0)
        return out

    def produce(self, jobs: int, timestamp_ms: int | None = None) -> None:
        with EventProducer(self.settings) as producer:
            self.events += producer.produce_many(self.batch(jobs), timestamp_ms)

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            self.produce(self.jobs_per_tick)

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


class LiveProjection:
    """The jobs projection running in a thread, as `cda projections run` does."""

    def __init__(self, settings: Settings, store: ProjectionStore) -> None:
        self.runner = ProjectionRunner(settings, store, JOBS, flush_interval_s=0.1, group_id=f"{settings.topic_prefix}live")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.runner.run, args=(self._stop,))

    def wait_for(self, events: int, timeout_s: float = 90) -> None:
        """Until `events` events are read and their rows stored (every jobs event gives one row)."""
        eventually(lambda: self.runner.stats.rows >= events, timeout_s, f"the live projection storing {events} rows")

    def __enter__(self) -> LiveProjection:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def reference(settings: Settings) -> Iterator[ProjectionStore]:
    """A second database of the same engine, folded from scratch, to compare against."""
    store = ProjectionStore(settings.clickhouse_dsn, f"{settings.clickhouse_database}_ref")
    migrate(store)
    yield store
    store.command(f"DROP DATABASE IF EXISTS {store.database}")
    store.close()


def view_rows(store: ProjectionStore) -> list[tuple]:  # type: ignore[type-arg]
    return store.query("SELECT * FROM company_automation_jobs ORDER BY ALL")


@pytest.mark.parametrize("partial", [False, True], ids=["full", "since"])
def test_rebuild_equals_the_live_view_while_events_keep_arriving(
    catalog: Catalog, store: ProjectionStore, reference: ProjectionStore, partial: bool
) -> None:
    settings = catalog("company_automation_jobs", "dead_letters")
    stream = Stream(settings)
    now = datetime.now(timezone.utc)
    stream.produce(100, timestamp_ms=int((now - timedelta(minutes=10)).timestamp() * 1000))
    middle = now - timedelta(minutes=5)
    stream.produce(100)
    with LiveProjection(settings, store) as live:
        live.wait_for(stream.events)
        with stream:
            before = stream.events
            eventually(lambda: stream.events > before, 30, "events arriving while the rebuild starts")
            result = rebuild(settings, store, JOBS, since=middle if partial else None)
            during = stream.events
            eventually(lambda: stream.events > during, 30, "events arriving after the swap")
        live.wait_for(stream.events)
    assert result.skipped == {}
    assert result.events > 0
    assert (result.carried_over > 0) == partial
    drain(settings, reference, ["jobs"], stream.events, group_suffix="-reference")
    rebuilt = view_rows(store)
    assert len(rebuilt) == stream._next
    assert rebuilt == view_rows(reference)


class SlowInserts(ProjectionStore):
    """A live runner's store on its own engine handle, whose inserts reach their table late: the rows go
    to a staging table, then an `INSERT ... SELECT` that sleeps moves them. The engine picks the target
    table when that insert starts and writes the rows `delay_s` later, as a slow insert into a busy server does."""

    def __init__(self, dsn: str, database: str, delay_s: float) -> None:
        super().__init__(dsn, database)
        self.delay_s = delay_s
        self.started = 0
        self.in_flight = threading.Event()

    def insert(self, table: str, rows: Sequence[Sequence[object]], columns: Sequence[str]) -> None:
        if not rows:
            return
        staging = f"staging_{uuid.uuid4().hex}"
        names = ", ".join(columns)
        self.command(f"CREATE TABLE {staging} AS {table} ENGINE = Memory")
        try:
            super().insert(staging, rows, columns)
            self.started += 1
            self.in_flight.set()
            self.command(f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging} "
                         f"WHERE sleepEachRow({self.delay_s / len(rows)}) = 0")
        finally:
            self.in_flight.clear()
            self.command(f"DROP TABLE IF EXISTS {staging}")


def test_rebuild_fences_live_inserts_in_flight_at_the_swap(
    catalog: Catalog, store: ProjectionStore, reference: ProjectionStore
) -> None:
    settings = catalog("company_automation_jobs", "dead_letters")
    stream = Stream(settings, jobs_per_tick=2)
    stream.produce(30)
    slow = SlowInserts(settings.clickhouse_dsn, settings.clickhouse_database, delay_s=1.0)
    try:
        with LiveProjection(settings, slow) as live:
            live.wait_for(stream.events)
            with stream:
                caught_up = stream.events

                def swap_during_a_live_insert(done: int, total: int) -> None:
                    """Each batch of the rebuild (the last one just before the swap) waits for a live insert
                    of events newer than the rebuild's end offsets to have just started."""
                    started = slow.started
                    eventually(lambda: live.runner.stats.rows >= caught_up and slow.started > started
                               and slow.in_flight.is_set(), 60, "a live insert in flight")

                result = rebuild(settings, store, JOBS, progress=swap_during_a_live_insert)
            live.wait_for(stream.events)
    finally:
        slow.close()
    assert store.query("SELECT count() FROM job_facts FINAL") == [(stream.events,)]  # 0 rows lost
    assert result.caught_up > 0  # the in-flight insert was waited for and copied across
    drain(settings, reference, ["jobs"], stream.events, group_suffix="-reference")
    assert view_rows(store) == view_rows(reference)


def test_rebuild_counts_what_it_skips_by_reason(catalog: Catalog, store: ProjectionStore) -> None:
    settings = catalog("company_automation_jobs", "dead_letters")
    jobs = topic_name(settings, "company_automation_jobs")
    good = job_story("acme", "j1")
    with EventProducer(settings) as producer:
        producer.produce_raw(jobs, b"acme", b"not an event at all")
        producer.produce_raw(jobs, b"acme", SingleObjectSerde().encode(
            Event.new("memory_written", "acme", entry_id="m1", content="on the wrong topic")))
        producer.produce(Event.new("tool_call_requested", "acme", job_id="j9", step=1, call_id="c9", tool_name="t",
                                   arguments_json="{}", attempt=70_000))  # a UInt16 cannot hold it
        producer.produce_many(good)
    result = rebuild(settings, store, TOOL_CALLS)
    calls = sum(1 for e in good if e.type in TOOL_CALLS.folds)
    assert result.events == len(good) + 3
    assert result.skipped == {NOT_AN_EVENT: 1, NOT_FOLDED: 1, REFUSED: 1, IGNORED: len(good) - calls}
    assert result.rows == calls
    assert store.query("SELECT count() FROM tool_call_facts") == [(calls,)]


def test_a_store_outage_loses_nothing_and_doubles_nothing(
    catalog: Catalog, store: ProjectionStore, reference: ProjectionStore, tmp_path: Path
) -> None:
    if not store.embedded:
        pytest.skip("the outage is staged by taking the embedded engine's folder lock from another process")
    settings = catalog("company_automation_jobs", "dead_letters")
    stream = Stream(settings)
    stream.produce(50)
    go = tmp_path / "go"
    blocker = subprocess.Popen(
        [sys.executable, "-c", BLOCKER, settings.clickhouse_dsn, str(go)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert blocker.stdout is not None and blocker.stdout.readline().strip() == "ready"
        with LiveProjection(settings, store) as live:
            live.wait_for(stream.events)
            reference.close()
            store.close()  # the engine shuts down; the other process takes its folder: ClickHouse is down
            go.touch()
            assert said(blocker, ("locked", "could not lock")) == "locked"
            stream.produce(50)  # arrives while the store is down
            blocker.wait(timeout=120)  # the store comes back when the other process lets go (slow under load)
            live.wait_for(stream.events)
        assert live.runner.stats.store_failures > 0
        assert live.runner.stats.rows == stream.events
    finally:
        blocker.kill()
    drain(settings, reference, ["jobs"], stream.events, group_suffix="-reference")
    assert store.query("SELECT count() FROM job_facts FINAL") == [(stream.events,)]
    assert view_rows(store) == view_rows(reference)
    assert len(view_rows(store)) == 100


def said(process: subprocess.Popen[str], words: tuple[str, ...]) -> str:
    """The next protocol line of the blocker (chDB prints its own errors on the same stream)."""
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip() in words:
            return line.strip()
    return "<exited>"


BLOCKER = """
import sys, time, pathlib
import clickhouse_connect
dsn, go = sys.argv[1], pathlib.Path(sys.argv[2])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)
deadline = time.monotonic() + 20
while True:
    try:
        client = clickhouse_connect.get_client(dsn=dsn)
        break
    except Exception:
        if time.monotonic() > deadline:
            print("could not lock", flush=True)
            sys.exit(1)
        time.sleep(0.005)
print("locked", flush=True)
time.sleep(3)
client.close()
"""
