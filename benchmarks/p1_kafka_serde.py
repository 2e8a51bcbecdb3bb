"""BENCH P1: Avro encode + produce vs raw produce of byte strings of the same sizes, and consume + decode
vs raw consume, on the real broker in the same run (goal: produce ratio >= 0.5).

    python benchmarks/p1_kafka_serde.py [--events 50000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from statistics import median
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition  # noqa: E402

from benchmarks.common import bench_line, ensure_broker, scratch_topics  # noqa: E402
from cda.settings import Settings  # noqa: E402
from topics.catalog import topic  # noqa: E402
from topics.connection import client_config, cluster_metadata, fetch_batch, topic_name  # noqa: E402
from topics.consumer import EventConsumer  # noqa: E402
from topics.events import Event  # noqa: E402
from topics.positions import Position  # noqa: E402
from topics.producer import EventProducer  # noqa: E402
from topics.serde import SingleObjectSerde  # noqa: E402

TOPIC = "company_automation_jobs"


def make_events(n: int) -> list[Event]:
    """A job-event mix of realistic sizes over 50 companies."""
    rng = random.Random(7)
    out: list[Event] = []
    for i in range(n):
        company = f"company-{i % 50}"
        job = f"job-{i // 5}"
        if i % 2:
            out.append(Event.new("tool_call_completed", company, job_id=job, step=1, call_id=f"c{i}", tool_name="create_invoice",
                                 status_code=201, latency_ms=rng.random() * 100,
                                 result_json=json.dumps({"invoice_id": f"inv-{i}", "lines": list(range(rng.randint(0, 30)))})))
        else:
            out.append(Event.new("job_accepted", company, job_id=job, request_id=f"r{i}", task="invoice order " * rng.randint(1, 8),
                                 tools=["create_invoice", "lookup_customer"]))
    return out


def produce_avro(settings: Settings, events: list[Event]) -> float:
    with EventProducer(settings) as producer:
        started = time.perf_counter()
        for event in events:
            producer.produce(event)
        producer.flush()
        return len(events) / (time.perf_counter() - started)


def produce_raw(settings: Settings, records: list[tuple[bytes, bytes]]) -> float:
    name = topic_name(settings, TOPIC)
    with EventProducer(settings) as producer:
        started = time.perf_counter()
        for key, value in records:
            producer.produce_raw(name, key, value)
        producer.flush()
        return len(records) / (time.perf_counter() - started)


def consume_decode(settings: Settings, expected: int) -> float:
    with EventConsumer(settings, f"bench-{uuid.uuid4()}") as consumer:
        consumer.assign(TOPIC, Position.beginning(), until_end=True)
        started = time.perf_counter()
        count = 0
        while not consumer.finished:
            count += len(consumer.poll(1.0, max_records=1000))
        elapsed = time.perf_counter() - started
    if count < expected:
        raise RuntimeError(f"read {count} of {expected} events")
    return count / elapsed


def consume_raw(settings: Settings, expected: int) -> float:
    name = topic_name(settings, TOPIC)
    consumer = Consumer(client_config(settings, **{"group.id": f"bench-{uuid.uuid4()}", "auto.offset.reset": "earliest",
                                                   "enable.auto.commit": False}))
    consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING)
                     for p in cluster_metadata(settings, topic=name).topics[name].partitions])
    started = time.perf_counter()
    count = 0
    while count < expected:
        count += sum(1 for m in fetch_batch(consumer, 1000, 1.0) if m.error() is None)
    elapsed = time.perf_counter() - started
    consumer.close()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    settings = Settings()
    ensure_broker(settings)
    events = make_events(args.events)
    serde = SingleObjectSerde()
    spec = topic(TOPIC)
    raw = [(spec.key_for(e), bytes(len(serde.encode(e)))) for e in events]  # same keys, same sizes
    avg_bytes = sum(len(v) for _, v in raw) / len(raw)
    avro_p, raw_p, avro_c, raw_c = [], [], [], []
    for _ in range(args.runs):  # interleaved, so drift on a shared machine hits both sides alike
        with scratch_topics(settings, TOPIC) as scoped:
            avro_p.append(produce_avro(scoped, events))
            avro_c.append(consume_decode(scoped, len(events)))
        with scratch_topics(settings, TOPIC) as scoped:
            raw_p.append(produce_raw(scoped, raw))
            raw_c.append(consume_raw(scoped, len(raw)))
    bench_line("P1", avro_produce_eps=median(avro_p), raw_produce_eps=median(raw_p), ratio=median(avro_p) / median(raw_p),
               events=len(events), avg_bytes=avg_bytes, runs=args.runs, goal_ratio=0.5)
    bench_line("P1", consume_decode_eps=median(avro_c), raw_consume_eps=median(raw_c), consume_ratio=median(avro_c) / median(raw_c),
               events=len(events), runs=args.runs)


if __name__ == "__main__":
    main()
