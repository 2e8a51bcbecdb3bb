"""BENCH P11: fairness. One company floods the agents with records on a tool that answers in 2 s; meanwhile
nine other companies send one-record jobs at 2 per second in all. Printed: the small jobs' latency p50/p99
with the flood against the same stream of small jobs without it (goal: p99 with <= 2 x p99 without), and the
flood's throughput with the small jobs beside it against its throughput alone (goal >= 0.8 of that share).

All in one run, on one agents worker, through Kafka, the fair scheduler and the real bridge to the example API
on loopback (the flood's tools send `X-Slow-Ms`, so the example API answers them late); the model answers
after a fixed latency, as in P6.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.agents_common import TASK, SimulatedModel, company_tools, job_ends, onboard_companies  # noqa: E402
from benchmarks.common import bench_line, ensure_broker, options, p99, scratch_topics  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.workers import wait_until  # noqa: E402
from examples.company_api import run_in_thread  # noqa: E402
from streams.app import agents_in_thread  # noqa: E402
from streams.ids import job_id_for  # noqa: E402
from streams.openapi_document import load_document  # noqa: E402
from streams.service import AgentService  # noqa: E402
from topics.events import Event  # noqa: E402
from topics.producer import EventProducer  # noqa: E402

FLOOD = "flood"
SMALL = tuple(f"small{i}" for i in range(1, 10))


def job(company: str, request_id: str, records: int) -> Event:
    rows = [{"customer": f"c{100 + i}", "amount": 1 + i % 50} for i in range(records)]
    return Event.new("data_process_requested", company, request_id=request_id, job_id=job_id_for(company, request_id),
                     task=TASK, payload_json=json.dumps({"invoices": rows}))


def flood_jobs(tag: str, records: int, per_job: int) -> list[Event]:
    return [job(FLOOD, f"{tag}-{i}", min(per_job, records - i * per_job)) for i in range(-(-records // per_job))]


def ended(settings: Settings) -> dict[str, Event]:
    """Every job's end so far, by job id."""
    return {job_id: ends[-1] for job_id, ends in job_ends(settings, "p11").items()}


def send_small(producer: EventProducer, tag: str, count: int, rate: float) -> list[Event]:
    """`count` one-record jobs round the nine companies, paced at `rate` per second."""
    sent = []
    start = time.perf_counter()
    for i in range(count):
        wait = start + i / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        event = job(SMALL[i % len(SMALL)], f"{tag}-{i}", 1)
        producer.produce(event)
        producer.flush()
        sent.append(event)
    return sent


def latencies_ms(settings: Settings, jobs: list[Event]) -> list[float]:
    ends = ended(settings)
    return [(ends[str(j["job_id"])].occurred_at - j.occurred_at).total_seconds() * 1000 for j in jobs]


def main() -> None:
    args = options(__doc__, flood_records=500, records_per_job=10, tool_ms=2000, small_rate=2.0, small_jobs=60,
                   model_latency_ms=20.0)
    settings = Settings()
    ensure_broker(settings)
    folder = Path(tempfile.mkdtemp(prefix="cda-bench-p11-"))
    with scratch_topics(settings, "company_data", "company_automation_jobs", "company_tools", "company_agents",
                        "company_memory", "company_sessions", "dead_letters") as scoped, \
            run_in_thread(folder / "api.sqlite3") as url:
        document, _ = load_document(f"{url}/openapi.json")
        onboard_companies(scoped, url, {company: company_tools(document, company, args.tool_ms if company == FLOOD else 0)
                                        for company in (FLOOD, *SMALL)})
        service = AgentService(scoped, model=SimulatedModel(args.model_latency_ms))
        with agents_in_thread(scoped, service), EventProducer(scoped) as producer:
            quiet = send_small(producer, "quiet", args.small_jobs, args.small_rate)  # 1. the small jobs alone
            wait_until(lambda: len(ended(scoped)) >= len(quiet), 300, 0.2)

            alone = flood_jobs("alone", args.flood_records, args.records_per_job)  # 2. the flood alone
            started = time.perf_counter()
            producer.produce_many(alone)
            producer.flush()
            wait_until(lambda: len(ended(scoped)) >= len(quiet) + len(alone), 3600, 0.2)
            alone_rate = args.flood_records / (time.perf_counter() - started)

            flood = flood_jobs("flood", args.flood_records, args.records_per_job)  # 3. both at once
            started = time.perf_counter()
            producer.produce_many(flood)
            producer.flush()
            busy = send_small(producer, "busy", args.small_jobs, args.small_rate)
            flood_ids = {str(j["job_id"]) for j in flood}
            wait_until(lambda: flood_ids <= set(ended(scoped)), 3600, 0.2)
            shared_rate = args.flood_records / (time.perf_counter() - started)
            wait_until(lambda: {str(j["job_id"]) for j in busy} <= set(ended(scoped)), 300, 0.2)
        without, with_flood = latencies_ms(scoped, quiet), latencies_ms(scoped, busy)
        bench_line("P11", small_p50_ms=statistics.median(with_flood), small_p99_ms=p99(with_flood),
                   small_p50_ms_without=statistics.median(without), small_p99_ms_without=p99(without),
                   p99_ratio=p99(with_flood) / p99(without), flood_records_per_s=shared_rate,
                   flood_records_per_s_alone=alone_rate, flood_share=shared_rate / alone_rate,
                   flood_records=args.flood_records, small_jobs=args.small_jobs, tool_ms=args.tool_ms,
                   goal_p99_ratio=2.0, goal_flood_share=0.8)


if __name__ == "__main__":
    main()
