"""BENCH P6: what the pipeline itself costs per unit of work — Kafka, Faust, the agent loop, the recorded
events and their acknowledgements — with the model's and the tool's own time taken out (goal p50 < 20 ms).

Per unit: its wall time minus the model's and the tool call's time, plus its share of its job's Kafka hop
(request produced -> job started) and of the job's end (last unit -> job_completed acknowledged).
Tool calls go through the real bridge to the example API on loopback; the model answers after a fixed latency.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.agents_common import invoice_jobs, onboarded_acme, pick_model  # noqa: E402
from benchmarks.common import bench_line, ensure_broker, options, scratch_topics  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.workers import wait_until  # noqa: E402
from streams.agent_loop import UnitTiming  # noqa: E402
from streams.app import agents_in_thread  # noqa: E402
from streams.service import AgentService  # noqa: E402
from topics.producer import EventProducer  # noqa: E402


def main() -> None:
    args = options(__doc__, jobs=20, units=10, model=("simulated", "gateway"), model_latency_ms=20.0)
    settings = Settings()
    ensure_broker(settings)
    with scratch_topics(settings, "company_data", "company_automation_jobs", "company_tools", "company_agents",
                        "company_memory", "company_sessions", "dead_letters") as scoped, onboarded_acme(scoped, concurrency=1):
        timings: list[UnitTiming] = []
        service = AgentService(scoped, model=pick_model(args.model, scoped, args.model_latency_ms),
                               observer=timings.append)
        jobs = invoice_jobs(args.jobs, args.units, tag="p6")
        job_wall: dict[str, float] = {}
        with agents_in_thread(scoped, service):
            with EventProducer(scoped) as producer:
                for job in jobs:  # one at a time: each job's overhead is measured alone
                    done = service.jobs_done
                    started = time.perf_counter()
                    producer.produce(job)
                    producer.flush()
                    wait_until(lambda d=done: service.jobs_done > d, 120, 0.0005)
                    job_wall[str(job["job_id"])] = time.perf_counter() - started
        units_of: dict[str, list[UnitTiming]] = {}
        for t in timings:
            units_of.setdefault(t.job_id, []).append(t)
        overheads, inside, outside_ms = [], [], []
        for job_id, units in units_of.items():  # units ran one after another (concurrency 1)
            outside = max(job_wall[job_id] - sum(u.wall_s for u in units), 0.0) / len(units)
            outside_ms.append(outside * 1000)
            inside += [(u.wall_s - u.model_s - u.tool_s) * 1000 for u in units]
            overheads += [(u.wall_s - u.model_s - u.tool_s + outside) * 1000 for u in units]
        print(f"in_unit_ms_p50={statistics.median(inside):.2f} job_share_per_unit_ms_p50={statistics.median(outside_ms):.2f}")
        print(f"units={len(timings)} model_ms_p50={statistics.median(t.model_s for t in timings) * 1000:.2f} "
              f"tool_ms_p50={statistics.median(t.tool_s for t in timings) * 1000:.2f}")
        qs = statistics.quantiles(overheads, n=20)
        bench_line("P6", unit_overhead_ms_p50=statistics.median(overheads), unit_overhead_ms_p95=qs[18],
                   units=len(timings), jobs=len(units_of), model=args.model, concurrency=1)


if __name__ == "__main__":
    main()
