"""Rebuild while events keep arriving, and a store outage in the middle of a stream: nothing lost, nothing doubled."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cda.settings import Settings
from projections.catalog import JOBS
from projections.migrate import migrate
from projections.rebuild import rebuild
from projections.runner import ProjectionRunner
from projections.store import ProjectionStore
from tests.test_projections import drain, job_story
from topics.events import Event
from topics.producer import EventProducer

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

    def produce(self, jobs: int) -> None:
        with EventProducer(self.settings) as producer:
            self.events += producer.produce_many(self.batch(jobs))

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
        deadline = time.monotonic() + timeout_s
        while self.runner.stats.rows < events and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.runner.stats.rows >= events, f"live projection stored {self.runner.stats.rows} of {events}"

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
    stream.produce(100)
    time.sleep(1.1)
    middle = datetime.now(timezone.utc)
    stream.produce(100)
    with LiveProjection(settings, store) as live:
        live.wait_for(stream.events)
        with stream:
            time.sleep(0.5)
            result = rebuild(settings, store, JOBS, since=middle if partial else None)
            time.sleep(0.5)
        live.wait_for(stream.events)
    assert result.events > 0
    assert (result.carried_over > 0) == partial
    drain(settings, reference, ["jobs"], stream.events, group_suffix="-reference")
    rebuilt = view_rows(store)
    assert len(rebuilt) == stream._next
    assert rebuilt == view_rows(reference)


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
            blocker.wait(timeout=30)  # the store comes back when the other process lets go
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
