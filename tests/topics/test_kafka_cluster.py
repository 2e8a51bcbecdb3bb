"""A 3-node KRaft cluster from the same jars, secured like the single broker: topics replicated 3 ways with
min.insync.replicas 2, one node SIGKILLed under a stream of jobs and training requests. Nothing a producer was told
was written is lost, nothing is doubled, and a consumer group reading through the kill carries on by itself."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from core.settings import Settings
from tests.helpers import free_port
from topics.admin import apply_catalog
from topics.catalog import CATALOG
from topics.cluster import cluster_of
from topics.consumer import EventConsumer
from topics.events import Event
from topics.positions import Position
from topics.producer import EventProducer

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]
TOPICS = ("company_automation_jobs", "lora_training_requests", "company_data_keys", "dead_letters")


def _events(n: int) -> list[Event]:
    out: list[Event] = []
    for i in range(n):
        company = f"co{i % 7}"
        if i % 10 == 9:
            out.append(Event.new("lora_training_requested", company, request_id=f"tr-{i}", base_model="/m",
                                 source="FROM_HISTORY", examples=[]))
        else:
            out.append(Event.new("job_accepted", company, job_id=f"job-{i}", request_id=f"r-{i}", task=f"task {i}"))
    return out


def test_a_node_killed_under_a_stream_loses_and_doubles_nothing(tmp_path: Path) -> None:
    ports = [(free_port(), free_port()) for _ in range(3)]
    cluster = cluster_of(tmp_path / "kafka", Settings().kafka_lib, ports, heap="256m")
    cluster.start()
    try:
        settings = Settings(home=tmp_path / "home", kafka_bootstrap=cluster.bootstrap, topic_prefix="c.",
                            kafka_credentials=tmp_path / "kafka" / "credentials.json", kafka_timeout_s=15,
                            kafka_replication=3, kafka_min_insync=2)
        apply_catalog(settings, tuple(s for s in CATALOG if s.name in TOPICS))
        sent = _events(600)
        want = {e.event_id for e in sent}
        seen: list[str] = []
        stop = threading.Event()

        def consume() -> None:  # a part's consumer group, reading through the kill
            with EventConsumer(settings, "cluster-readers") as consumer:
                consumer.subscribe(["company_automation_jobs", "lora_training_requests"])
                while not stop.is_set() and len(set(seen)) < len(want):
                    for received in consumer.poll(0.5):
                        seen.append(received.event.event_id)
                    consumer.commit()

        reader = threading.Thread(target=consume)
        reader.start()
        with EventProducer(settings) as producer:
            for i, event in enumerate(sent):
                producer.produce(event)
                if i == 200:
                    producer.flush()
                    victim = cluster.nodes[1]
                    os.kill(int(victim.pid_file.read_text()), signal.SIGKILL)  # mid-stream, no clean shutdown
                if i % 50 == 0:
                    time.sleep(0.05)
            producer.flush(timeout_s=120)  # raises when anything was not acknowledged
        deadline = time.monotonic() + 120
        while len(set(seen)) < len(want) and time.monotonic() < deadline:
            time.sleep(0.5)
        stop.set()
        reader.join(60)
        assert set(seen) == want, f"lost {len(want - set(seen))} of {len(want)}"
        total: Counter[str] = Counter()
        for name in ("company_automation_jobs", "lora_training_requests"):
            with EventConsumer(settings, f"recount-{uuid.uuid4()}") as recount:
                recount.assign(name, Position.beginning(), until_end=True)
                total.update(r.event.event_id for r in recount)
        assert set(total) == want and max(total.values()) == 1, "a record was written twice"
        victim.start(wait_s=120)  # the killed node comes back by itself into the cluster
        assert victim.answers()
    finally:
        cluster.stop()
