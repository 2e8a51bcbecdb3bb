"""BENCH P4: generation throughput with 8 distinct adapters in concurrent requests vs the base model only,
same server, same run (goal ratio >= 0.9).

    python benchmarks/p4_multi_lora.py [--requests 64] [--tokens 64] [--adapters 8] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from benchmarks.common import bench_line, random_adapters, running_vllm  # noqa: E402
from core.settings import Settings  # noqa: E402
from inference.vllm_api import VllmApi  # noqa: E402

PROMPT = "Task: invoice the order 42 for acme and email the customer\nCall:"


async def throughput(url: str, models: list[str], requests: int, tokens: int) -> float:
    """Completion tokens per second for `requests` concurrent requests spread over `models`."""
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=httpx.Limits(max_connections=requests)) as http:
        async def one(i: int) -> int:
            body = {"model": models[i % len(models)], "prompt": PROMPT, "max_tokens": tokens, "temperature": 0,
                    "ignore_eos": True}
            response = await http.post("/v1/completions", json=body)
            response.raise_for_status()
            return int(response.json()["usage"]["completion_tokens"])

        started = time.perf_counter()
        generated = sum(await asyncio.gather(*(one(i) for i in range(requests))))
        return generated / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--adapters", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with running_vllm(Settings()) as settings:
        api = VllmApi(settings.vllm_url)
        names = []
        for i, path in enumerate(random_adapters(settings, args.adapters)):
            name = f"bench-p4-{i}"
            api.load_adapter(name, str(path), inplace=True).raise_for_status()
            names.append(name)
        asyncio.run(throughput(settings.vllm_url, [settings.served_base_name, *names], 16, 8))  # warm-up
        base, lora = [], []
        for _ in range(args.runs):  # interleaved, so drift on a shared machine hits both sides alike
            base.append(asyncio.run(throughput(settings.vllm_url, [settings.served_base_name], args.requests, args.tokens)))
            lora.append(asyncio.run(throughput(settings.vllm_url, names, args.requests, args.tokens)))
        for name in names:
            api.unload_adapter(name)
    bench_line("P4", lora_tokens_per_s=median(lora), base_tokens_per_s=median(base), ratio=median(lora) / median(base),
               adapters=args.adapters, requests=args.requests, tokens=args.tokens, runs=args.runs, goal_ratio=0.9)


if __name__ == "__main__":
    main()
