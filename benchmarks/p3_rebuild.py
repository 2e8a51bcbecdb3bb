"""BENCH P3: rebuild rate of a projection vs raw consume + decode rate of the same topic, same run
(goal ratio >= 0.5).

    python benchmarks/p3_rebuild.py [--events 200000]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import bench_line, bench_store, ensure_broker, options, scratch_topics  # noqa: E402
from benchmarks.p1_kafka_serde import consume_decode, make_events  # noqa: E402
from core.settings import Settings  # noqa: E402
from projections.catalog import JOBS  # noqa: E402
from projections.rebuild import rebuild  # noqa: E402
from topics.producer import EventProducer  # noqa: E402

TOPIC = "company_automation_jobs"


def main() -> None:
    args = options(__doc__, events=200_000, runs=3)
    settings = Settings()
    ensure_broker(settings)
    events = make_events(args.events)
    raw_rates, rebuild_rates = [], []
    with bench_store(settings) as store, scratch_topics(settings, TOPIC, "dead_letters") as scoped:
        with EventProducer(scoped) as producer:
            producer.produce_many(events)
        for _ in range(args.runs):  # interleaved, so drift on a shared machine hits both sides alike
            raw_rates.append(consume_decode(scoped, len(events)))
            started = time.perf_counter()
            result = rebuild(scoped, store, JOBS)
            rebuild_rates.append(result.events / (time.perf_counter() - started))
        rows = store.query("SELECT count() FROM company_automation_jobs")[0][0]
    raw, rebuilt = sorted(raw_rates)[len(raw_rates) // 2], sorted(rebuild_rates)[len(rebuild_rates) // 2]
    bench_line("P3", rebuild_eps=rebuilt, consume_decode_eps=raw, ratio=rebuilt / raw, events=len(events),
               jobs=rows, runs=args.runs, goal_ratio=0.5)


if __name__ == "__main__":
    main()
