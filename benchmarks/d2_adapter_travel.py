"""BENCH D2: adapter travel. Time from producing `lora_adapter_ready` with an adapter registry URI to the first
completion by that adapter, on an inference home that had to download it (hash checked, unpacked) from the HTTP
adapter registry (`cda inference registry`'s app) — trainer and inference share no disk. p50/p99; goal < 1 s on
loopback. The same run measures the shared-disk path (a `file://` URI, as P5) as its baseline.

    python benchmarks/d2_adapter_travel.py [--companies 10]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from benchmarks.common import bench_line, ensure_broker, free_port, options, random_adapters, running_vllm, scratch_topics  # noqa: E402
from core.adapter_archive import pack  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.workers import WorkerThread  # noqa: E402
from inference.adapter_places import registry_root  # noqa: E402
from inference.adapter_store_http import HttpAdapterStore  # noqa: E402
from inference.lifecycle import AdapterManager  # noqa: E402
from inference.random_adapter import place_in_registry  # noqa: E402
from inference.registry_app import create_registry_app  # noqa: E402
from inference.routing import AdapterRouter, served_name  # noqa: E402
from inference.vllm_api import VllmApi  # noqa: E402
from topics.events import Event  # noqa: E402
from topics.producer import EventProducer  # noqa: E402

TOPICS = ("lora_adapter_ready", "lora_training_status", "company_adapters", "dead_letters")


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


def ready_to_served(settings: Settings, http: httpx.Client, company: str, uri: str) -> float:
    body = {"model": served_name(company), "prompt": "ping", "max_tokens": 1}
    with EventProducer(settings, **{"linger.ms": 0}) as announce:
        started = time.perf_counter()
        announce.produce(Event.new("lora_adapter_ready", company, request_id="r", adapter_name=company, version="v1",
                                   uri=uri, base_model=settings.base_model_path, rank=8, dataset_hash="h"))
    while http.post("/v1/completions", json=body).status_code != 200:
        if time.perf_counter() - started > 60:
            raise RuntimeError(f"adapter of {company} never served")
        time.sleep(0.002)
    elapsed = (time.perf_counter() - started) * 1000
    VllmApi(settings.vllm_url).unload_adapter(served_name(company))
    return elapsed


def main() -> None:
    args = options(__doc__, companies=10)
    base = Settings()
    ensure_broker(base)
    port = free_port()
    registry_url = f"http://127.0.0.1:{port}"
    token = uuid.uuid4().hex
    server = uvicorn.Server(uvicorn.Config(create_registry_app(Path(tempfile.mkdtemp(prefix="cda-d2-registry-")), token),
                                           host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    with running_vllm(base) as running, scratch_topics(running, *TOPICS) as scratch:
        trainer = scratch.model_copy(update={"home": Path(tempfile.mkdtemp(prefix="cda-d2-trainer-"))})
        settings = scratch.model_copy(update={"home": Path(tempfile.mkdtemp(prefix="cda-d2-inference-")),
                                              "base_model": scratch.base_model_path, "adapter_registry_url": registry_url,
                                              "adapter_registry_token": SecretStr(token)})
        sources = random_adapters(trainer.model_copy(update={"base_model": scratch.base_model_path}), args.companies)
        store = HttpAdapterStore(registry_url, token)
        uris = [store.put(pack(source)) for source in sources]
        manager = AdapterManager(settings, VllmApi(settings.vllm_url), AdapterRouter(), EventProducer(settings))
        stop = threading.Event()
        worker = WorkerThread("d2-lifecycle", lambda s: manager.run(s, f"{settings.topic_prefix}d2"), stop).start()
        http = httpx.Client(base_url=settings.vllm_url, timeout=30)
        time.sleep(3)  # the lifecycle joins its group before the clock starts
        travelled, shared = [], []
        for source, uri in zip(sources, uris, strict=True):
            travelled.append(ready_to_served(settings, http, f"d2{uuid.uuid4().hex[:8]}", uri))
            company = f"d2{uuid.uuid4().hex[:8]}"
            path = place_in_registry(registry_root(settings), company, "v1", source)
            shared.append(ready_to_served(settings, http, company, f"file://{path}"))
        stop.set()
        worker.join()
        server.should_exit = True
        if worker.error is not None:
            raise RuntimeError(f"the lifecycle died: {worker.error}")
    bench_line("D2", download_p50_ms=statistics.median(travelled), download_p99_ms=p99(travelled),
               shared_disk_p50_ms=statistics.median(shared),
               ratio=statistics.median(travelled) / statistics.median(shared),
               archive_kb=len(pack(sources[0])) / 1024, companies=len(travelled), goal_ms=1000)


if __name__ == "__main__":
    main()
