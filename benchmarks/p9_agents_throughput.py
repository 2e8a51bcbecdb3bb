"""BENCH P9: units/s through Kafka and the agents vs the same model and tool calls made directly by a tight
async loop with the same concurrency, in one run (goal ratio >= 0.7); job latency p50/p95 through the agents.

Both sides use the same model (a fixed-latency stand-in answering with acme's convention, or the real
gateway with --model gateway) and the same bridge calling the example API on loopback.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.agents_common import TASK, invoice_jobs, onboarded_acme, pick_model  # noqa: E402
from benchmarks.common import bench_line, ensure_broker, options, scratch_topics  # noqa: E402
from context.units import split_units  # noqa: E402
from core.prompts import PromptContext, call_schema, render, render_prompt, render_step  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.workers import wait_until  # noqa: E402
from streams.agent_loop import Model  # noqa: E402
from streams.agent_settings import AgentSettings  # noqa: E402
from streams.app import agents_in_thread  # noqa: E402
from streams.bridge import ApiBridge  # noqa: E402
from streams.ids import idempotency_key  # noqa: E402
from streams.job_reader import timeline  # noqa: E402
from streams.service import AgentService  # noqa: E402
from streams.tools import Tool  # noqa: E402
from topics.events import Event  # noqa: E402
from topics.producer import EventProducer  # noqa: E402


async def direct(settings: Settings, model: Model, tools: dict[str, Tool], agent: AgentSettings, jobs: list[Event],
                 concurrency: int) -> float:
    """The same decisions and calls, without Kafka or the agents: units/s."""
    bridge = ApiBridge(settings)
    specs = [t.spec() for t in tools.values()]
    schema = call_schema(specs)
    slots = asyncio.Semaphore(concurrency)

    async def unit(job: Event, index: int, data_json: str) -> None:
        async with slots:  # the call, then the decision after seeing its answer (done): what a unit of the agents asks
            decision = await model.decide("acme", render_prompt(TASK, data_json, specs), schema, True)
            key = idempotency_key("acme", f"direct-{job['job_id']}", index)
            outcome = await bridge.call(tools[str(decision.tool)], decision.arguments or {}, key, agent)
            step = render_step(str(decision.tool), decision.arguments or {}, json.loads(outcome.result_json or "null"))
            await model.decide("acme", render(PromptContext.of(TASK, data_json, specs, steps=(step,))),
                               call_schema(specs, first_step=False), True)

    jobs_at_once = asyncio.Semaphore(settings.agent_company_jobs)

    async def one(job: Event) -> None:
        async with jobs_at_once:
            await asyncio.gather(*(unit(job, u.index, u.data_json) for u in split_units(str(job["payload_json"]))))

    started = time.perf_counter()  # the company's jobs concurrently, units of a job concurrently: what the agents do
    await asyncio.gather(*(one(job) for job in jobs))
    elapsed = time.perf_counter() - started
    await bridge.aclose()
    return sum(len(split_units(str(j["payload_json"]))) for j in jobs) / elapsed


def main() -> None:
    args = options(__doc__, jobs=30, units=10, concurrency=4, model=("simulated", "gateway"), model_latency_ms=50.0)
    settings = Settings()
    ensure_broker(settings)
    with scratch_topics(settings, "company_data", "company_automation_jobs", "company_tools", "company_agents",
                        "company_memory", "company_sessions", "dead_letters") as scoped, \
            onboarded_acme(scoped, args.concurrency) as (_, tools, agent):
        model = pick_model(args.model, scoped, args.model_latency_ms)
        direct_rate = asyncio.run(direct(scoped, model, tools, agent, invoice_jobs(args.jobs, args.units, "direct", 1),
                                         args.concurrency))
        service = AgentService(scoped, model=model)
        jobs = invoice_jobs(args.jobs, args.units, "p9", seed=2)
        with agents_in_thread(scoped, service):
            started = time.perf_counter()
            with EventProducer(scoped) as producer:
                producer.produce_many(jobs)
            wait_until(lambda: service.jobs_done >= len(jobs), 600, 0.005)
            elapsed = time.perf_counter() - started
        agents_rate = len(jobs) * args.units / elapsed
        latencies = []
        for job in jobs:
            events = timeline(scoped, str(job["job_id"]))
            end = next(e for e in events if e.type == "job_completed")
            latencies.append((end.occurred_at - job.occurred_at).total_seconds() * 1000)
        qs = statistics.quantiles(latencies, n=20)
        bench_line("P9", agents_units_per_s=agents_rate, direct_units_per_s=direct_rate, ratio=agents_rate / direct_rate,
                   job_latency_ms_p50=statistics.median(latencies), job_latency_ms_p95=qs[18], jobs=len(jobs),
                   units_per_job=args.units, concurrency=args.concurrency, model=args.model)


if __name__ == "__main__":
    main()
