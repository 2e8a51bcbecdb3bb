"""BENCH P5: time from producing `lora_adapter_ready` to the first completion served by that adapter,
with the server already running (goal < 200 ms).

    python benchmarks/p5_adapter_ready.py [--companies 10]
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from benchmarks.common import bench_line, ensure_broker, options, random_adapters, running_vllm, scratch_topics  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.workers import WorkerThread  # noqa: E402
from inference.adapter_places import registry_root  # noqa: E402
from inference.lifecycle import AdapterManager  # noqa: E402
from inference.random_adapter import place_in_registry  # noqa: E402
from inference.routing import AdapterRouter, served_name  # noqa: E402
from inference.vllm_api import VllmApi  # noqa: E402
from topics.events import Event  # noqa: E402
from topics.producer import EventProducer  # noqa: E402

TOPICS = ("lora_adapter_ready", "lora_training_status", "company_adapters", "dead_letters")


def main() -> None:
    args = options(__doc__, companies=10)
    base_settings = Settings()
    ensure_broker(base_settings)
    with running_vllm(base_settings) as running, scratch_topics(running, *TOPICS) as scratch:
        # a scratch registry: the lifecycle serves a company only files under <home>/adapters/<company>/
        settings = scratch.model_copy(update={"home": Path(tempfile.mkdtemp(prefix="cda-p5-")),
                                              "base_model": scratch.base_model_path})
        paths = random_adapters(settings, args.companies)
        producer = EventProducer(settings)
        manager = AdapterManager(settings, VllmApi(settings.vllm_url), AdapterRouter(), producer)
        stop = threading.Event()
        worker = WorkerThread("p5-lifecycle", lambda s: manager.run(s, f"{settings.topic_prefix}p5"), stop).start()
        http = httpx.Client(base_url=settings.vllm_url, timeout=30)
        time.sleep(3)  # the lifecycle joins its group before the clock starts
        timings = []
        for source in paths:
            company = f"p5{uuid.uuid4().hex[:8]}"
            path = place_in_registry(registry_root(settings), company, "v1", source)
            body = {"model": served_name(company), "prompt": "ping", "max_tokens": 1}
            with EventProducer(settings, **{"linger.ms": 0}) as announce:
                started = time.perf_counter()
                announce.produce(Event.new("lora_adapter_ready", company, request_id="r", adapter_name=company,
                                           version="v1", uri=f"file://{path}", base_model=settings.base_model_path,
                                           rank=8, dataset_hash="h"))
            while http.post("/v1/completions", json=body).status_code != 200:
                if time.perf_counter() - started > 30:
                    raise RuntimeError(f"adapter of {company} never served")
                time.sleep(0.002)
            timings.append((time.perf_counter() - started) * 1000)
            VllmApi(settings.vllm_url).unload_adapter(served_name(company))
        stop.set()
        worker.join()
        if worker.error is not None:
            raise RuntimeError(f"the lifecycle died: {worker.error}")
    bench_line("P5", ready_to_first_completion_ms_p50=median(timings), max_ms=max(timings),
               min_ms=min(timings), companies=len(timings), goal_ms=200)


if __name__ == "__main__":
    main()
