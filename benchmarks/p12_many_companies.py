"""BENCH P12: many companies on one stack. Two parts, one run:

1. The agents. N companies (default 1,000), each with 3-8 tools, 200 memory entries and its agent settings,
   send one-record jobs with Zipf-distributed popularity for `--seconds`. An agents worker (`cda agents run`'s
   own code in its own process, the model a fixed-latency stand-in as in P6) serves them through the real bridge
   to the example API. The jobs come through `POST /process` of `cda api serve` (its own process, projections
   in it), each with its company's own key. Printed: job latency p50/p99 (from the HTTP request to the job's
   end), the worker's and the API's peak RSS, lost and doubled effects.
2. Inference. vLLM serving the tiny base with as many random rank-8 adapters as there are companies, loaded by
   name, of which it holds `CDA_VLLM_MAX_LORAS` at once and `CDA_VLLM_MAX_CPU_LORAS` in its CPU cache (LRU).
   Completions are asked with the same Zipf popularity; a request whose adapter was not among the last
   `max_cpu_loras` used is cold (vLLM reads it from disk again). Printed: cold and warm completion p50/p99 and
   the vLLM processes' peak RSS.

Goals: cold p99 < 2 s on this CPU, the agents' RSS < 1.5 GB, 0 lost and 0 doubled.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.keys import issue_key  # noqa: E402
from benchmarks.agents_common import TASK, company_tools, job_ends, onboard_companies  # noqa: E402
from benchmarks.common import (  # noqa: E402
    bench_line,
    ensure_broker,
    free_port,
    options,
    p99,
    random_adapters,
    running_vllm,
    scratch_topics,
    stop_child,
)
from benchmarks.r1b_agents_kills import Worker  # noqa: E402
from context import events as context_events  # noqa: E402
from core.settings import Settings, settings_env  # noqa: E402
from core.workers import wait_until  # noqa: E402
from examples.company_api import run_in_thread  # noqa: E402
from streams.openapi_document import load_document  # noqa: E402
from topics.catalog import CATALOG  # noqa: E402
from topics.events import Event  # noqa: E402
from topics.producer import EventProducer  # noqa: E402


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process and its descendants, in MB, summed."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
            for task in Path(f"/proc/{current}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration, ValueError):
            continue
    return total / 1024


def zipf_weights(n: int, s: float) -> list[float]:
    return [1 / (rank ** s) for rank in range(1, n + 1)]


def onboard(settings: Settings, url: str, companies: list[str], notes: int, rng: random.Random) -> None:
    """Each company: 3-8 tools (the example API's, some under more names), its settings, `notes` memory entries."""
    document, _ = load_document(f"{url}/openapi.json")
    onboard_companies(settings, url, {c: company_tools(document, c, more=rng.randint(0, 5)) for c in companies})
    with EventProducer(settings) as producer:
        for company in companies:
            producer.produce_many([context_events.memory_entry(company, f"Note {i} of {company}: prefer route "
                                                                        f"{rng.randint(1, 99)} on weekdays", 2_000)
                                   for i in range(notes)])


class ApiProcess:
    """`cda api serve` in its own process (projections in it, on an embedded chDB under `home`), for its RSS."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        with log.open("ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "cda.cli.main", "api", "serve", "--port", str(port)],
                                            env=env, stdout=out, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        stop_child(self.process)


def agents_part(settings: Settings, args: object, rng: random.Random) -> dict[str, float]:
    """Jobs sent through `POST /process` with each company's own key, run by an agents worker."""
    import httpx

    companies = [f"co{i:04d}" for i in range(args.companies)]  # type: ignore[attr-defined]
    folder = Path(tempfile.mkdtemp(prefix="cda-bench-p12-"))
    keys = {c: issue_key(c) for c in companies}
    with scratch_topics(settings, *(spec.name for spec in CATALOG)) as scoped, \
            run_in_thread(folder / "api.sqlite3") as url:
        onboard(scoped, url, companies, args.notes, rng)  # type: ignore[attr-defined]
        with EventProducer(scoped) as producer:
            producer.produce_many([k.event for k in keys.values()])
        env = settings_env(scoped.model_copy(update={"home": folder}))
        worker = Worker(env, args.model_latency_ms, folder / "worker.log")  # type: ignore[attr-defined]
        worker.start()
        api = ApiProcess(env, free_port(), folder / "api.log")
        sent: list[tuple[str, str, float]] = []  # (job id, customer, when sent)
        weights = zipf_weights(len(companies), 1.1)

        def ends() -> dict[str, Event]:
            return {job_id: ended[-1] for job_id, ended in job_ends(scoped, "p12").items()}

        def send(http: httpx.Client, company: str, customer: str) -> None:
            when = time.time()
            answer = http.post("/company-automation/process", headers={"Authorization": f"Bearer {keys[company].key}"},
                               json={"task": TASK, "data": {"invoices": [{"customer": customer, "amount": 1}]}})
            answer.raise_for_status()
            sent.append((str(answer.json()["job_id"]), customer, when))

        try:
            with httpx.Client(base_url=api.url, timeout=60) as http:
                last = companies[-1]  # the API knows every key once it knows the last one produced
                if not wait_until(lambda: _answers(http, f"Bearer {keys[last].key}"), 300, 0.5):
                    raise RuntimeError(f"the API did not know the keys within 300 s: see {folder / 'api.log'}")
                send(http, companies[0], "warmup")  # the worker up before the clock starts
                wait_until(lambda: sent[0][0] in ends(), 300, 0.5)
                sent.clear()
                started = time.perf_counter()
                while time.perf_counter() - started < args.seconds:  # type: ignore[attr-defined]
                    send(http, rng.choices(companies, weights)[0], f"n{len(sent)}")
                    time.sleep(max(0.0, started + len(sent) / args.rate - time.perf_counter()))  # type: ignore[attr-defined]
            wanted = {job for job, _, _ in sent}
            wait_until(lambda: wanted <= set(ends()), 600, 1.0)
            rss = peak_rss_mb(worker.process.pid) if worker.process else 0.0
            api_rss = peak_rss_mb(api.process.pid)
        finally:
            api.stop()
            worker.stop()
        effects = httpx.get(f"{url}/effects", params={"limit": 100_000}).json()
        ended = ends()
    latencies = [(ended[job].occurred_at.timestamp() - when) * 1000 for job, _, when in sent if job in ended]
    per_ref: dict[str, int] = {}
    for effect in effects:
        per_ref[str(effect["arguments"]["ref"])] = per_ref.get(str(effect["arguments"]["ref"]), 0) + 1
    lost = sum(1 for _, customer, _ in sent if per_ref.get(f"ACME-{customer}", 0) == 0)
    return {"jobs": len(sent), "job_p50_ms": statistics.median(latencies), "job_p99_ms": p99(latencies),
            "agents_rss_mb": rss, "api_rss_mb": api_rss, "lost": lost,
            "doubled": sum(n - 1 for n in per_ref.values() if n > 1), "stuck": len(sent) - len(latencies)}


def _answers(http: object, authorization: str) -> bool:
    import httpx

    try:
        return http.get("/company-automation/tools", headers={"Authorization": authorization}).status_code == 200  # type: ignore[attr-defined]
    except httpx.HTTPError:
        return False


async def _ask(url: str, names: list[str], weights: list[float], seconds: float, cache: int, rng: random.Random
               ) -> tuple[list[float], list[float]]:
    import httpx

    recent: OrderedDict[str, None] = OrderedDict()
    cold: list[float] = []
    warm: list[float] = []
    lock = asyncio.Lock()
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        async def one() -> None:
            while time.perf_counter() < deadline:
                name = rng.choices(names, weights)[0]
                async with lock:
                    is_cold = name not in recent
                    recent[name] = None
                    recent.move_to_end(name)
                    while len(recent) > cache:
                        recent.popitem(last=False)
                started = time.perf_counter()
                response = await http.post("/v1/completions", json={"model": name, "prompt": "Task: bill c1\nCall:",
                                                                    "max_tokens": 4, "temperature": 0})
                response.raise_for_status()
                (cold if is_cold else warm).append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(one() for _ in range(4)))
    return cold, warm


def inference_part(settings: Settings, args: object, rng: random.Random) -> dict[str, float]:
    from inference.vllm_api import VllmApi

    with running_vllm(settings) as served:
        api = VllmApi(served.vllm_url)
        paths = random_adapters(served, args.companies, rank=8)  # type: ignore[attr-defined]
        names = [f"co{i:04d}@lora" for i in range(len(paths))]
        started = time.perf_counter()
        for name, path in zip(names, paths, strict=True):
            api.load_adapter(name, str(path)).raise_for_status()
        load_s = time.perf_counter() - started
        cold, warm = asyncio.run(_ask(served.vllm_url, names, zipf_weights(len(names), 1.1), args.inference_seconds,  # type: ignore[attr-defined]
                                      served.vllm_max_cpu_loras, rng))
        vllm_pids = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _is_vllm(p)]
        rss = sum(peak_rss_mb(int(p.name)) for p in vllm_pids if not _has_vllm_parent(p))
        for name in names:
            api.unload_adapter(name)
    return {"cold_p50_ms": statistics.median(cold) if cold else 0.0, "cold_p99_ms": p99(cold) if cold else 0.0,
            "cold_requests": len(cold), "warm_p50_ms": statistics.median(warm) if warm else 0.0,
            "warm_p99_ms": p99(warm) if warm else 0.0, "adapters_loaded_s": load_s, "inference_rss_mb": rss,
            "max_loras": served.vllm_max_loras, "max_cpu_loras": served.vllm_max_cpu_loras}


def _is_vllm(proc: Path) -> bool:
    try:
        return b"vllm_main.py" in (proc / "cmdline").read_bytes()
    except OSError:
        return False


def _has_vllm_parent(proc: Path) -> bool:
    try:
        parent = next(line.split()[1] for line in (proc / "status").read_text().splitlines() if line.startswith("PPid:"))
        return _is_vllm(Path(f"/proc/{parent}"))
    except (OSError, StopIteration):
        return False


def main() -> None:
    args = options(__doc__, companies=1000, notes=200, seconds=600.0, rate=20.0, model_latency_ms=20.0,
                   inference_seconds=120.0, part=("both", "agents", "inference"))
    settings = Settings()
    ensure_broker(settings)
    rng = random.Random(12)
    figures: dict[str, float] = {}
    if args.part in ("both", "agents"):
        figures |= agents_part(settings, args, rng)
    if args.part in ("both", "inference"):
        figures |= inference_part(settings, args, rng)
    bench_line("P12", companies=args.companies, **{k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()},
               goal_cold_p99_ms=2000, goal_agents_rss_mb=1536)


if __name__ == "__main__":
    main()
