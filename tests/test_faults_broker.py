"""The broker killed with SIGKILL and restarted while events flow into the workers: nothing lost, nothing
doubled in the views, and every worker resumes by itself (no restart of theirs). Prints the time to resume."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest

from cda.settings import Settings
from cda.workers import WorkerThread, run_until_stopped
from projections.catalog import JOBS
from projections.migrate import migrate
from projections.runner import ProjectionRunner
from projections.store import ProjectionStore
from tests.conftest import local_broker
from tests.helpers import eventually
from topics.admin import apply_catalog
from topics.catalog import CATALOG
from topics.events import Event
from topics.producer import EventProducer

pytestmark = pytest.mark.kafka
EVENTS = 1_500


def _jobs_worker(settings: Settings, store: ProjectionStore) -> WorkerThread:
    def session(stop: threading.Event) -> None:
        ProjectionRunner(settings, store, JOBS, flush_interval_s=0.1).run(stop)

    stop = threading.Event()
    return WorkerThread("jobs-projection", lambda s: run_until_stopped(s, session, name="jobs", max_pause_s=2.0),
                        stop).start()


def test_a_killed_broker_loses_and_doubles_nothing_and_workers_resume(tmp_path: Path, clickhouse_dsn: str) -> None:
    broker = local_broker(tmp_path / "kafka")
    broker.start()
    settings = Settings(home=tmp_path / "home", kafka_bootstrap=broker.bootstrap, kafka_timeout_s=5,
                        topic_prefix="fault.", clickhouse_url=clickhouse_dsn,
                        clickhouse_database=f"fault_{uuid.uuid4().hex[:8]}")
    store = ProjectionStore.from_settings(settings)
    worker: WorkerThread | None = None
    try:
        apply_catalog(settings, tuple(s for s in CATALOG if s.name in ("company_automation_jobs", "dead_letters")))
        migrate(store)
        worker = _jobs_worker(settings, store)

        def stored() -> int:
            return int(store.query("SELECT count() FROM job_facts FINAL")[0][0])

        sent = [Event.new("job_accepted", f"c{i % 7}", job_id=f"job-{i}", request_id=f"r{i}", task="t")
                for i in range(EVENTS)]
        # a long delivery bound: records queued while the broker is down are delivered after it is back
        with EventProducer(settings, **{"message.timeout.ms": 180_000}) as producer:
            for event in sent[: EVENTS // 2]:
                producer.produce(event)
            producer.flush()
            eventually(lambda: stored() > 0, 60, "the projection storing its first rows")
            os.kill(broker.pid() or 0, signal.SIGKILL)
            eventually(lambda: not broker.answers(), 30, "the broker going away")
            for event in sent[EVENTS // 2:]:
                producer.produce(event)  # queued in the producer while the broker is down
            at_restart = stored()
            broker.start()
            restarted = time.monotonic()
            producer.flush(180)
        eventually(lambda: stored() > at_restart, 120, "the projection resuming after the restart")
        resumed_s = time.monotonic() - restarted
        eventually(lambda: stored() == EVENTS, 120, f"all {EVENTS} events in the view")
        count, distinct = store.query("SELECT count(), uniqExact(event_id) FROM job_facts FINAL")[0]
        assert count == distinct == EVENTS  # 0 lost, 0 doubled
        jobs = store.query("SELECT count() FROM company_automation_jobs")[0][0]
        assert jobs == EVENTS
        assert worker.alive and worker.error is None  # it resumed by itself
        print(f"FAULT broker_sigkill events={EVENTS} resume_after_restart_s={resumed_s:.2f}")
    finally:
        if worker is not None:
            worker.stop.set()
            worker.join(30)
        store.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
        store.close()
        broker.stop()
