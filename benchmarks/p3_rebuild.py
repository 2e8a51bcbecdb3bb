"""BENCH P3: rebuild rate of a projection vs raw consume + decode rate of the same topic, same run
(goal ratio >= 0.5).

    python benchmarks/p3_rebuild.py [--events 200000]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import bench_line, bench_store, ensure_broker, scratch_topics  # noqa: E402
from benchmarks.p1_kafka_serde import make_events  # noqa: E402
from cda.settings import Settings  # noqa: E402
from projections.catalog import JOBS  # noqa: E402
from projections.rebuild import rebuild  # noqa: E402
from topics.consumer import EventConsumer  # noqa: E402
from topics.positions import Position  # noqa: E402
from topics.producer import EventProducer  # noqa: E402

TOPIC = "company_automation_jobs"


def consume_decode_rate(settings: Settings, expected: int) -> float:
    with EventConsumer(settings, f"bench-{uuid.uuid4()}") as consumer:
        consumer.assign(TOPIC, Position.beginning(), until_end=True)
        started = time.perf_counter()
        count = 0
        while not consumer.finished:
            count += len(consumer.poll(1.0, max_records=5_000))
        elapsed = time.perf_counter() - started
    if count != expected:
        raise RuntimeError(f"read {count} of {expected} events")
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    settings = Settings()
    ensure_broker(settings)
    events = make_events(args.events)
    raw_rates, rebuild_rates = [], []
    with bench_store(settings) as store, scratch_topics(settings, TOPIC, "dead_letters") as scoped:
        with EventProducer(scoped) as producer:
            producer.produce_many(events)
        for _ in range(args.runs):  # interleaved, so drift on a shared machine hits both sides alike
            raw_rates.append(consume_decode_rate(scoped, len(events)))
            started = time.perf_counter()
            result = rebuild(scoped, store, JOBS)
            rebuild_rates.append(result.events / (time.perf_counter() - started))
        rows = store.query("SELECT count() FROM company_automation_jobs")[0][0]
    raw, rebuilt = sorted(raw_rates)[len(raw_rates) // 2], sorted(rebuild_rates)[len(rebuild_rates) // 2]
    bench_line("P3", rebuild_eps=rebuilt, consume_decode_eps=raw, ratio=rebuilt / raw, events=len(events),
               jobs=rows, runs=args.runs, goal_ratio=0.5)


if __name__ == "__main__":
    main()
