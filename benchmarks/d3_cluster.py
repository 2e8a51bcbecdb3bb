"""BENCH D3: the same stream of jobs and training requests into one broker and into a 3-node cluster (replication
3, min.insync.replicas 2, acks=all with idempotence): events/s of each and their ratio; then, on the cluster, one
node SIGKILLed mid-stream: lost and doubled (goal 0/0), whether a consumer group reading through the kill got
everything by itself (resumed=1), and whether the node rejoined when started again (rejoined=1).

    python benchmarks/d3_cluster.py [--events 5000]
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import bench_line, ensure_broker, free_port, options  # noqa: E402
from core.settings import Settings  # noqa: E402
from topics.admin import apply_catalog, delete_topics  # noqa: E402
from topics.catalog import CATALOG  # noqa: E402
from topics.cluster import LocalCluster, cluster_of  # noqa: E402
from topics.connection import topic_name  # noqa: E402
from topics.consumer import EventConsumer  # noqa: E402
from topics.credentials import credentials_file  # noqa: E402
from topics.errors import CommitFailed  # noqa: E402
from topics.events import Event  # noqa: E402
from topics.positions import Position  # noqa: E402
from topics.producer import EventProducer  # noqa: E402

TOPICS = ("company_automation_jobs", "lora_training_requests", "company_data_keys", "dead_letters")
READ = ("company_automation_jobs", "lora_training_requests")


def stream(n: int, tag: str) -> list[Event]:
    out: list[Event] = []
    for i in range(n):
        company = f"co{i % 7}"
        if i % 10 == 9:
            out.append(Event.new("lora_training_requested", company, request_id=f"{tag}-tr-{i}", base_model="/m",
                                 source="FROM_HISTORY", examples=[]))
        else:
            out.append(Event.new("job_accepted", company, job_id=f"{tag}-job-{i}", request_id=f"r-{i}", task=f"t {i}"))
    return out


def rate(settings: Settings, events: list[Event]) -> float:
    """Events/s produced and acknowledged by every replica the topic asks for."""
    with EventProducer(settings) as producer:
        started = time.perf_counter()
        producer.produce_many(events)
        producer.flush(timeout_s=300)
        return len(events) / (time.perf_counter() - started)


def counted(settings: Settings) -> Counter[str]:
    total: Counter[str] = Counter()
    for name in READ:
        with EventConsumer(settings, f"d3-count-{uuid.uuid4()}") as reader:
            reader.assign(name, Position.beginning(), until_end=True)
            total.update(r.event.event_id for r in reader)
    return total


def kill_run(settings: Settings, cluster: LocalCluster, n: int) -> dict[str, int]:
    sent = stream(n, "kill")
    want = {e.event_id for e in sent}
    seen: set[str] = set()
    stop = threading.Event()

    def consume() -> None:  # a part's consumer group, reading through the kill
        with EventConsumer(settings, f"d3-readers-{uuid.uuid4().hex[:6]}") as consumer:
            consumer.subscribe(list(READ))
            while not stop.is_set() and not want <= seen:
                seen.update(r.event.event_id for r in consumer.poll(0.5))
                try:
                    consumer.commit()
                except CommitFailed:  # the group moved with the killed node: what was read comes again
                    continue

    reader = threading.Thread(target=consume)
    reader.start()
    victim = cluster.nodes[1]
    with EventProducer(settings) as producer:
        for i, event in enumerate(sent):
            producer.produce(event)
            if i == n // 3:
                producer.flush()
                os.kill(int(victim.pid_file.read_text()), signal.SIGKILL)
            if i % 100 == 0:
                time.sleep(0.02)
        producer.flush(timeout_s=300)
    deadline = time.monotonic() + 180
    while not want <= seen and time.monotonic() < deadline:
        time.sleep(0.5)
    stop.set()
    reader.join(60)
    total = counted(settings)
    kill_ids = {k: v for k, v in total.items() if k in want}
    victim.start(wait_s=180)
    return {"lost": len(want - set(kill_ids)), "doubled": sum(1 for v in kill_ids.values() if v > 1),
            "resumed": int(want <= seen), "rejoined": int(victim.answers())}


def main() -> None:
    args = options(__doc__, events=5000)
    base = Settings()
    ensure_broker(base)
    single = base.model_copy(update={"topic_prefix": f"d3{uuid.uuid4().hex[:6]}.",
                                     "kafka_credentials": credentials_file(base)})
    specs = tuple(s for s in CATALOG if s.name in TOPICS)
    apply_catalog(single, specs)
    try:
        one_broker = rate(single, stream(args.events, "one"))
    finally:
        delete_topics(single, [topic_name(single, s.name) for s in specs])
    folder = Path(tempfile.mkdtemp(prefix="cda-d3-"))
    cluster = cluster_of(folder / "kafka", base.kafka_lib, [(free_port(), free_port()) for _ in range(3)])
    cluster.start()
    try:
        replicated = base.model_copy(update={
            "home": folder / "home", "kafka_bootstrap": cluster.bootstrap, "topic_prefix": "d3.",
            "kafka_credentials": folder / "kafka" / "credentials.json", "kafka_timeout_s": 15,
            "kafka_replication": 3, "kafka_min_insync": 2})
        apply_catalog(replicated, specs)
        three_brokers = rate(replicated, stream(args.events, "three"))
        kill = kill_run(replicated, cluster, max(300, args.events // 5))
    finally:
        cluster.stop()
    bench_line("D3", one_broker_events_s=one_broker, cluster_events_s=three_brokers,
               ratio=three_brokers / one_broker, brokers=3, replication=3, min_insync=2, **kill)


if __name__ == "__main__":
    main()
