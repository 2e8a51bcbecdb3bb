"""BENCH P10: `POST /company-automation/process` at a steady rate (default 200 requests/s for 30 s, open loop: a
request is sent on schedule whether or not earlier ones were answered) against `cda api serve` as its own process
on the embedded defaults (chDB, projections in the API process): p50/p99 latency (goal p99 < 50 ms), and every 202
exactly one job — each accepted job id once on `company_data` (0 lost, 0 doubled) and once in the API's own listing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.keys import issue_key  # noqa: E402
from benchmarks.common import bench_line, ensure_broker, free_port, scratch_topics  # noqa: E402
from core.health import answers_ok  # noqa: E402
from core.settings import Settings, settings_env  # noqa: E402
from core.workers import wait_until  # noqa: E402
from topics.catalog import CATALOG  # noqa: E402
from topics.consumer import EventConsumer  # noqa: E402
from topics.dead_letters import Skipped  # noqa: E402
from topics.positions import Position  # noqa: E402
from topics.producer import EventProducer  # noqa: E402


def _answers(url: str) -> bool:
    return answers_ok(f"{url}/health/ready")


async def load(url: str, key: str, rate: float, seconds: float, idempotency_keys: bool) -> tuple[list[float], Counter[int], list[str]]:
    """Open-loop load: request i leaves at start + i/rate; latency is send to answer.

    The client is aiohttp, not httpx: on this 2-core machine httpx's pool spent ~3 ms of CPU a request and, once
    answers queued, tens of ms more (28 s of client CPU for 3,000 requests at 200/s), so it measured itself: p99
    of a minute. aiohttp spends ~0.5 ms, leaving the cores to the API under test.
    """
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    job_ids: list[str] = []
    async with aiohttp.ClientSession(base_url=url, headers={"Authorization": f"Bearer {key}"},
                                     connector=aiohttp.TCPConnector(limit=400),
                                     timeout=aiohttp.ClientTimeout(total=30)) as client:
        async def one(i: int) -> None:
            headers = {"Idempotency-Key": f"p10-{i}"} if idempotency_keys else {}
            body = {"task": "Bill the customer for the order", "data": {"invoices": [{"customer": f"c{i}", "amount": i}]}}
            started = time.perf_counter()
            try:
                async with client.post("/company-automation/process", json=body, headers=headers) as response:
                    answer = await response.read()
            except (aiohttp.ClientError, TimeoutError):
                statuses[0] += 1
                return
            latencies.append(time.perf_counter() - started)
            statuses[response.status] += 1
            if response.status == 202:
                job_ids.append(json.loads(answer)["job_id"])

        total = int(rate * seconds)
        tasks = []
        start = time.perf_counter()
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return latencies, statuses, job_ids


def _server_buckets(url: str) -> dict[float, float]:
    """The API's own latency histogram of POST /process (cumulative count per upper bound, seconds)."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    pattern = re.compile(r'^http_request_duration_seconds_bucket\{(?=[^}]*handler="/company-automation/process")'
                         r'(?=[^}]*method="POST")(?=[^}]*le="([^"]+)")[^}]*\} (\S+)$', re.M)
    return {float(le): float(count) for le, count in pattern.findall(text)}


def _server_p99_ms(before: dict[float, float], after: dict[float, float]) -> float:
    """The bucket bound under which 99% of the measured requests were answered, as the server timed them: what
    the API spent, without the client's or the network's queueing."""
    counts = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    total = counts[-1][1] if counts else 0.0
    return next((le * 1000 for le, n in counts if total and n >= 0.99 * total), float("nan"))


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1] if len(values) > 1 else (values or [0.0])[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="Seconds of load before the measured run.")
    parser.add_argument("--no-projections", action="store_true", help="Leave the projections out of the API process "
                        "(then nothing is listed: only the log is checked).")
    parser.add_argument("--idempotency-keys", action="store_true", help="Send an Idempotency-Key with every request.")
    args = parser.parse_args()

    base = Settings()
    ensure_broker(base)
    with scratch_topics(base, *(s.name for s in CATALOG)) as settings:
        home = Path(tempfile.mkdtemp(prefix="cda-bench-p10-"))
        issued = issue_key("acme")
        with EventProducer(settings) as producer:
            producer.produce(issued.event)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = settings_env(settings.model_copy(update={
            "home": home, "api_port": port, "api_rate_per_s": 1_000_000, "api_rate_burst": 1_000_000,
            "api_embedded_projections": not args.no_projections}))
        server = subprocess.Popen([sys.executable, "-m", "cda.cli.main", "api", "serve"], env=env,
                                  stdout=subprocess.DEVNULL)
        try:
            if not wait_until(lambda: _answers(url), 120, 0.2):
                raise SystemExit(f"the API did not become ready on {url}")
            if args.warmup:
                asyncio.run(load(url, issued.key, args.rate, args.warmup, False))
            timed_before, load_before = _server_buckets(url), os.getloadavg()[0]
            latencies, statuses, job_ids = asyncio.run(load(url, issued.key, args.rate, args.seconds,
                                                            args.idempotency_keys))
            server_p99_ms, load_after = _server_p99_ms(timed_before, _server_buckets(url)), os.getloadavg()[0]
            accepted = set(job_ids)
            on_log: Counter[str] = Counter()
            with EventConsumer(settings, f"bench-{uuid.uuid4()}", dead_letters=Skipped()) as consumer:
                consumer.assign("company_data", Position.beginning(), until_end=True)
                for received in consumer:
                    on_log[str(received.event["job_id"])] += 1
            lost = sum(1 for j in accepted if on_log[j] == 0)
            doubled = sum(1 for j in accepted if on_log[j] > 1)

            def listed_total() -> int:
                return int(httpx.get(f"{url}/company-automation/jobs", params={"limit": 1},
                                     headers={"Authorization": f"Bearer {issued.key}"}, timeout=30).json()["total"])
            warm = len(on_log) - len(accepted)
            if not args.no_projections:
                wait_until(lambda: listed_total() >= len(on_log), 120, 0.5)
            listed = listed_total() - warm if not args.no_projections else -1  # -1: not listed (no projections)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
        ms = [x * 1000 for x in latencies]
        bench_line("P10", rate=args.rate, seconds=args.seconds, requests=sum(statuses.values()),
                   accepted=statuses[202], errors=sum(v for k, v in statuses.items() if k != 202),
                   p50_ms=_percentile(ms, 0.5), p99_ms=_percentile(ms, 0.99), max_ms=max(ms or [0.0]),
                   server_p99_le_ms=server_p99_ms, lost=lost, doubled=doubled, listed=listed, goal_p99_ms=50,
                   idempotency_keys=int(args.idempotency_keys), load_before=load_before, load_after=load_after,
                   cores=os.cpu_count() or 0)


if __name__ == "__main__":
    main()
