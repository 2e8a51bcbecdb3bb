"""BENCH P1: Avro encode + produce vs raw produce of the same encoded bytes, and consume + decode
vs raw consume, on the real broker in the same run (goal: both ratios >= 0.5, aim 0.8).

Besides events per second (wall clock), each side's CPU time per event (this process, librdkafka's
threads included) is printed: on a shared machine the wall-clock ratios move with the neighbours' load,
the CPU figures much less.

    python benchmarks/p1_kafka_serde.py [--events 50000] [--runs 3]
"""

from __future__ import annotations

import gc
import json
import random
import sys
import time
import uuid
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition  # noqa: E402

from benchmarks.common import bench_line, ensure_broker, options, scratch_topics  # noqa: E402
from core.settings import Settings  # noqa: E402
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


class Clock:
    """Wall and CPU time of one measured stretch."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def rates(self, count: int) -> tuple[float, float]:
        """(events per second, CPU microseconds per event) since the clock started."""
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        return count / wall, cpu / count * 1e6


def produce_avro(settings: Settings, events: list[Event]) -> tuple[float, float]:
    with EventProducer(settings) as producer:
        clock = Clock()
        for event in events:
            producer.produce(event)
        producer.flush()
        return clock.rates(len(events))


def produce_raw(settings: Settings, records: list[tuple[bytes, bytes]]) -> tuple[float, float]:
    name = topic_name(settings, TOPIC)
    with EventProducer(settings) as producer:
        clock = Clock()
        for key, value in records:
            producer.produce_raw(name, key, value)
        producer.flush()
        return clock.rates(len(records))


def consume_decode(settings: Settings, expected: int) -> float:
    """Events per second read and decoded by an `EventConsumer` (P3 compares rebuilds with it)."""
    return consume_decode_rates(settings, expected)[0]


def consume_decode_rates(settings: Settings, expected: int) -> tuple[float, float]:
    with EventConsumer(settings, f"bench-{uuid.uuid4()}") as consumer:
        consumer.assign(TOPIC, Position.beginning(), until_end=True)
        clock = Clock()
        count = 0
        while not consumer.finished:
            count += len(consumer.poll(1.0, max_records=1000))
        rates = clock.rates(count)
    if count < expected:
        raise RuntimeError(f"read {count} of {expected} events")
    return rates


def consume_raw(settings: Settings, expected: int) -> tuple[float, float]:
    name = topic_name(settings, TOPIC)
    consumer = Consumer(client_config(settings, **{"group.id": f"bench-{uuid.uuid4()}", "auto.offset.reset": "earliest",
                                                   "enable.auto.commit": False}))
    consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING)
                     for p in cluster_metadata(settings, topic=name).topics[name].partitions])
    clock = Clock()
    count = 0
    while count < expected:
        count += sum(1 for m in fetch_batch(consumer, 1000, 1.0) if m.error() is None)
    rates = clock.rates(count)
    consumer.close()
    return rates


def main() -> None:
    args = options(__doc__, events=50_000, runs=3)
    settings = Settings()
    ensure_broker(settings)
    events = make_events(args.events)
    serde = SingleObjectSerde()
    spec = topic(TOPIC)
    raw = [(spec.key_for(e), serde.encode(e)) for e in events]  # the same keys and the same bytes
    avg_bytes = sum(len(v) for _, v in raw) / len(raw)
    # The fixture (tens of thousands of events held for the whole run) is no part of what is measured: left
    # in the collected heap, every full garbage collection during consume+decode would walk it, a cost that
    # a consumer process, which holds a batch at a time, does not have.
    gc.freeze()
    avro_p: list[tuple[float, float]] = []
    raw_p: list[tuple[float, float]] = []
    avro_c: list[tuple[float, float]] = []
    raw_c: list[tuple[float, float]] = []
    for _ in range(args.runs):  # interleaved, so drift on a shared machine hits both sides alike
        with scratch_topics(settings, TOPIC) as scoped:
            avro_p.append(produce_avro(scoped, events))
            avro_c.append(consume_decode_rates(scoped, len(events)))
        with scratch_topics(settings, TOPIC) as scoped:
            raw_p.append(produce_raw(scoped, raw))
            raw_c.append(consume_raw(scoped, len(raw)))
    eps = {name: median(r[0] for r in runs) for name, runs in (("ap", avro_p), ("rp", raw_p), ("ac", avro_c), ("rc", raw_c))}
    cpu = {name: median(r[1] for r in runs) for name, runs in (("ap", avro_p), ("rp", raw_p), ("ac", avro_c), ("rc", raw_c))}
    bench_line("P1", avro_produce_eps=eps["ap"], raw_produce_eps=eps["rp"], ratio=eps["ap"] / eps["rp"],
               avro_produce_cpu_us=cpu["ap"], raw_produce_cpu_us=cpu["rp"], cpu_ratio=cpu["rp"] / cpu["ap"],
               events=len(events), avg_bytes=avg_bytes, runs=args.runs, goal_ratio=0.5)
    bench_line("P1", consume_decode_eps=eps["ac"], raw_consume_eps=eps["rc"], consume_ratio=eps["ac"] / eps["rc"],
               consume_decode_cpu_us=cpu["ac"], raw_consume_cpu_us=cpu["rc"], consume_cpu_ratio=cpu["rc"] / cpu["ac"],
               events=len(events), runs=args.runs)

if __name__ == "__main__":
    main()
