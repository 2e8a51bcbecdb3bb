"""BENCH P2: fold rate into chDB (events/s; goal >= 50,000) and projection lag p50/p99 at a steady
1,000 events/s (goal p99 < 1 s), on the real broker and the embedded ClickHouse engine.

    python benchmarks/p2_projection_fold.py [--events 200000] [--lag-seconds 20] [--rate 1000]
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import bench_line, bench_store, ensure_broker, options, scratch_topics  # noqa: E402
from benchmarks.p1_kafka_serde import make_events  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.workers import wait_until  # noqa: E402
from projections.catalog import JOBS  # noqa: E402
from projections.runner import ProjectionRunner  # noqa: E402
from projections.store import ProjectionStore  # noqa: E402
from topics.consumer import Received  # noqa: E402
from topics.events import Event  # noqa: E402
from topics.producer import EventProducer  # noqa: E402

TOPIC = "company_automation_jobs"


def fold_rate(store: ProjectionStore, events: list[Event], batch: int = 20_000) -> float:
    """Events -> rows -> batched inserts into chDB, without Kafka in the way."""
    received = [Received(e, "bench", i % 6, i, 0, e.company_id.encode()) for i, e in enumerate(events)]
    started = time.perf_counter()
    for start in range(0, len(received), batch):
        rows = [JOBS.row(r) for r in received[start:start + batch]]
        store.insert(JOBS.table, rows, JOBS.columns)
    return len(received) / (time.perf_counter() - started)


def end_to_end_rate(settings: Settings, store: ProjectionStore, events: list[Event]) -> float:
    """From the topic to stored rows with committed offsets: the projection as it runs."""
    with EventProducer(settings) as producer:
        producer.produce_many(events)
    runner = ProjectionRunner(settings, store, JOBS, batch_size=20_000, flush_interval_s=0.5,
                              group_id=f"{settings.topic_prefix}bench")
    runner.start()
    stop = threading.Event()
    while runner.stats.events == 0:  # the clock starts once the group is joined and the first batch is in
        runner.step(stop)
    started, first = time.perf_counter(), runner.stats.events
    while runner.stats.rows < len(events):
        runner.step(stop)
    elapsed = time.perf_counter() - started
    runner.consumer.close()
    return (len(events) - first) / elapsed


def restamped(event: Event) -> Event:
    """The same event with a new id and the current time, as if it had just happened."""
    fields = {k: v for k, v in event.data.items() if k not in ("event_id", "company_id", "occurred_at")}
    return Event.new(event.type, event.company_id, **fields)


def lag(settings: Settings, store: ProjectionStore, rate: int, seconds: float) -> tuple[float, float, int]:
    """Produce at a steady `rate` while the projection runs; lag = stored time minus event time."""
    runner = ProjectionRunner(settings, store, JOBS, group_id=f"{settings.topic_prefix}lag")
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,))
    thread.start()
    templates = make_events(1_000)
    with EventProducer(settings) as producer:  # one event through, so the group is joined before the clock starts
        producer.produce(restamped(templates[0]))
    wait_until(lambda: runner.stats.rows >= 1, 60)
    runner.stats.lag_ms.clear()
    produced = 0
    with EventProducer(settings, **{"linger.ms": 1}) as producer:
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            for _ in range(int(elapsed * rate) - produced):  # catch up to the steady schedule
                producer.produce(restamped(templates[produced % len(templates)]))
                produced += 1
            time.sleep(0.005)
    wait_until(lambda: len(runner.stats.lag_ms) >= produced, 30, 0.1)
    stop.set()
    thread.join()
    samples = sorted(runner.stats.lag_ms)
    pct = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]  # noqa: E731
    return pct(0.5), pct(0.99), produced


def main() -> None:
    args = options(__doc__, events=200_000, lag_seconds=20.0, rate=1_000)
    settings = Settings()
    ensure_broker(settings)
    events = make_events(args.events)
    with bench_store(settings) as store:
        fold = fold_rate(store, events)
    with bench_store(settings) as store, scratch_topics(settings, TOPIC, "dead_letters") as scoped:
        e2e = end_to_end_rate(scoped, store, events)
    bench_line("P2", fold_eps=fold, end_to_end_eps=e2e, events=len(events), goal_fold_eps=50_000)
    with bench_store(settings) as store, scratch_topics(settings, TOPIC, "dead_letters") as scoped:
        p50, p99, produced = lag(scoped, store, args.rate, args.lag_seconds)
    bench_line("P2", lag_p50_ms=p50, lag_p99_ms=p99, rate_eps=args.rate, events=produced, goal_p99_ms=1000)


if __name__ == "__main__":
    main()
