"""The broker killed with SIGKILL and restarted while events flow into the projections, the trainer and the
adapter lifecycle: nothing lost, nothing doubled in the views, and every worker resumes by itself (no
restart of theirs). Prints the time to resume. (The trainer's requests here fail fast — the company has no
tools — and the announced adapters lie outside the company's registry folder, so neither needs vLLM.)"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest

from core.settings import Settings
from core.workers import WorkerThread, run_until_stopped
from inference.lifecycle import AdapterManager
from inference.routing import AdapterRouter
from inference.vllm_api import VllmApi
from projections.catalog import ADAPTERS, JOBS
from projections.migrate import migrate
from projections.runner import ProjectionRunner
from projections.store import ProjectionStore
from tests.conftest import local_broker
from tests.helpers import eventually
from topics.admin import apply_catalog
from topics.events import Event
from topics.producer import EventProducer
from trainer.worker import TrainerWorker

pytestmark = pytest.mark.kafka
EVENTS = 1_500
REQUESTS = 12


def _projection(settings: Settings, store: ProjectionStore, projection: object, stop: threading.Event) -> WorkerThread:
    def session(inner: threading.Event) -> None:
        ProjectionRunner(settings, store, projection, flush_interval_s=0.1).run(inner)  # type: ignore[arg-type]

    name = getattr(projection, "name", "projection")
    return WorkerThread(name, lambda s: run_until_stopped(s, session, name=name, max_pause_s=2.0), stop).start()


def _training_request(i: int) -> Event:
    return Event.new("lora_training_requested", "toolless", request_id=f"tr-{i}", base_model="/models/tiny",
                     source="INLINE", examples=[])


def _foreign_adapter(i: int) -> Event:
    return Event.new("lora_adapter_ready", "acme", request_id=f"rd-{i}", adapter_name="acme@lora", version=f"v{i}",
                     uri=f"file:///elsewhere/acme/v{i}", base_model="/models/tiny", rank=8, dataset_hash="h", metrics={})


def test_a_killed_broker_loses_and_doubles_nothing_and_workers_resume(tmp_path: Path, clickhouse_dsn: str) -> None:
    broker = local_broker(tmp_path / "kafka")
    broker.start()
    settings = Settings(home=tmp_path / "home", kafka_bootstrap=broker.bootstrap, kafka_timeout_s=5,
                        kafka_credentials=broker.credentials_file,
                        topic_prefix="fault.", clickhouse_url=clickhouse_dsn,
                        clickhouse_database=f"fault_{uuid.uuid4().hex[:8]}")
    store = ProjectionStore.from_settings(settings)
    stop = threading.Event()
    workers: list[WorkerThread] = []
    try:
        apply_catalog(settings)
        migrate(store)
        producer_of_outcomes = EventProducer(settings)
        lifecycle = AdapterManager(settings, VllmApi("http://127.0.0.1:9", 2.0), AdapterRouter(), producer_of_outcomes)
        workers = [_projection(settings, store, JOBS, stop), _projection(settings, store, ADAPTERS, stop),
                   WorkerThread("trainer", TrainerWorker(settings).run, stop).start(),
                   WorkerThread("lifecycle", lifecycle.run, stop).start()]

        def stored() -> int:
            return int(store.query("SELECT count() FROM job_facts FINAL")[0][0])

        sent = [Event.new("job_accepted", f"c{i % 7}", job_id=f"job-{i}", request_id=f"r{i}", task="t")
                for i in range(EVENTS)]
        # a long delivery bound: records queued while the broker is down are delivered after it is back
        with EventProducer(settings, **{"message.timeout.ms": 180_000}) as producer:
            for event in sent[: EVENTS // 2]:
                producer.produce(event)
            producer.produce_many(_training_request(i) for i in range(REQUESTS // 2))
            producer.produce_many(_foreign_adapter(i) for i in range(REQUESTS // 2))
            producer.flush()
            eventually(lambda: stored() > 0, 60, "the projection storing its first rows")
            os.kill(broker.pid() or 0, signal.SIGKILL)
            eventually(lambda: not broker.answers(), 30, "the broker going away")
            for event in sent[EVENTS // 2:]:
                producer.produce(event)  # queued in the producer while the broker is down
            producer.produce_many(_training_request(i) for i in range(REQUESTS // 2, REQUESTS))
            producer.produce_many(_foreign_adapter(i) for i in range(REQUESTS // 2, REQUESTS))
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

        def runs() -> dict[str, str]:
            return {r["request_id"]: r["status"] for r in store.query_dicts("SELECT request_id, status FROM lora_adapters")}
        wanted = {**{f"tr-{i}": "failed" for i in range(REQUESTS)}, **{f"rd-{i}": "refused" for i in range(REQUESTS)}}
        eventually(lambda: runs() == wanted, 180, "every training request failed and every foreign adapter refused, once")
        assert all(w.alive and w.error is None for w in workers)  # each resumed by itself
        print(f"FAULT broker_sigkill events={EVENTS} requests={REQUESTS} adapters={REQUESTS} "
              f"resume_after_restart_s={resumed_s:.2f}")
    finally:
        stop.set()
        for w in workers:
            w.join(30)
        store.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
        store.close()
        broker.stop()
