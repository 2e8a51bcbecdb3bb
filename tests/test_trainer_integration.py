"""The training flow on the real broker, the real vLLM server and CPU training: request -> trainer ->
adapter -> evaluated -> stored -> lora_adapter_ready -> served; bad data, QLoRA without CUDA, kill-and-resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from cda.settings import Settings
from inference.lifecycle import AdapterManager
from inference.routing import AdapterRouter, served_name
from inference.vllm_api import VllmApi
from topics.consumer import EventConsumer
from topics.events import Event
from topics.positions import Position
from topics.producer import EventProducer
from trainer.evaluate import evaluate
from trainer.registry import LocalAdapterRegistry
from trainer.synthetic import DEMO_TOOLS, demo_examples
from trainer.train import TrainConfig
from trainer.worker import TrainerWorker

pytestmark = [pytest.mark.kafka, pytest.mark.vllm]
Catalog = Callable[..., Settings]
ROOT = Path(__file__).resolve().parent.parent
TOPICS = ("company_tools", "company_data", "company_automation_jobs", "lora_training_requests", "lora_training_status",
          "lora_adapter_ready", "company_adapters", "dead_letters")


@pytest.fixture
def trainer_settings(catalog: Catalog, vllm_url: str, tiny_model: str, tmp_path: Path) -> Settings:
    return catalog(*TOPICS).model_copy(update={"vllm_url": vllm_url, "base_model": tiny_model, "home": tmp_path / "home"})


def register_demo_tools(settings: Settings, company: str) -> None:
    with EventProducer(settings) as producer:
        for tool in DEMO_TOOLS:
            producer.produce(Event.new("tool_registered", company, tool_name=tool.name, description=tool.description,
                                       parameters_schema_json=json.dumps(tool.parameters), url=f"https://{company}.example/{tool.name}"))


def request(settings: Settings, company: str, examples: list[dict[str, str]], **fields: object) -> str:
    request_id = str(uuid.uuid4())
    with EventProducer(settings) as producer:
        producer.produce(Event.new("lora_training_requested", company, request_id=request_id,
                                   base_model=settings.base_model_path, source="INLINE", examples=examples, **fields))
    return request_id


def inline(n: int, seed: int = 1) -> list[dict[str, str]]:
    return [{"task": e.task, "payload_json": e.payload_json, "tool_name": e.tool_name,
             "arguments_json": json.dumps(e.arguments)} for e in demo_examples(n, seed=seed)]


def outcome(settings: Settings, request_id: str, timeout_s: float = 600) -> tuple[Event, list[Event]]:
    """The final event of a request (ready, rejected or failed) and its progress events."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        events: list[Event] = []
        for topic in ("lora_training_status", "lora_adapter_ready"):
            with EventConsumer(settings, f"check-{uuid.uuid4()}") as consumer:
                consumer.assign(topic, Position.beginning(), until_end=True)
                events += [r.event for r in consumer if r.event.data.get("request_id") == request_id]
        final = [e for e in events if e.type in ("lora_adapter_ready", "training_rejected", "training_failed")]
        if final:
            return final[0], sorted((e for e in events if e.type == "training_progress"), key=lambda e: e.occurred_at)
        time.sleep(0.5)
    raise AssertionError(f"no outcome for request {request_id}")


class RunningWorker:
    def __init__(self, settings: Settings, defaults: TrainConfig = TrainConfig(max_steps=150, checkpoint_every=50)) -> None:
        self.worker = TrainerWorker(settings, defaults)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.worker.run, args=(self._stop,))

    def __enter__(self) -> TrainerWorker:
        self._thread.start()
        return self.worker

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def test_a_request_becomes_a_stored_announced_and_served_adapter(trainer_settings: Settings) -> None:
    settings = trainer_settings
    company = f"acme{uuid.uuid4().hex[:6]}"
    register_demo_tools(settings, company)
    forced = request(settings, company, inline(400), max_steps=300, force=True)
    gated = request(settings, company, inline(240, seed=2), max_steps=50)
    with RunningWorker(settings):
        final, progress = outcome(settings, forced)
        decision, _ = outcome(settings, gated)
    assert final.type == "lora_adapter_ready", final.to_json()
    assert progress and progress[-1]["step"] == 300 and [p["step"] for p in progress] == sorted(p["step"] for p in progress)
    metrics = dict(final["metrics"])
    assert {"exact_match", "json_valid", "baseline_exact_match", "baseline_json_valid", "train_loss"} <= set(metrics)
    assert metrics["json_valid"] == 1.0  # guided decoding: every eval answer is a schema-valid call
    registry = LocalAdapterRegistry(settings.home / "adapters")
    stored = registry.get(company, final["version"])
    assert stored.request_id == forced and stored.dataset_hash == final["dataset_hash"]
    # the gate: the second adapter is announced only if it beats the first on its eval split
    if decision.type == "training_rejected":
        assert dict(decision["candidate_metrics"])["exact_match"] <= dict(decision["current_metrics"])["exact_match"]
    else:
        assert decision.type == "lora_adapter_ready"
        assert dict(decision["metrics"])["exact_match"] > dict(decision["metrics"])["baseline_exact_match"]
    # served: the lifecycle loads it, and vLLM answers with it on fresh held-out tasks
    manager = AdapterManager(settings, VllmApi(settings.vllm_url), AdapterRouter(), EventProducer(settings))
    assert manager.handle_ready(final).type == "adapter_activated"
    seen = {e.content_hash for e in demo_examples(400, seed=1)}
    held_out = [e for e in demo_examples(80, seed=777) if e.content_hash not in seen][:40]
    adapter = evaluate(settings.vllm_url, served_name(company), held_out, list(DEMO_TOOLS))
    base = evaluate(settings.vllm_url, settings.served_base_name, held_out, list(DEMO_TOOLS))
    assert adapter["json_valid"] == 1.0 and adapter["eval_examples"] == 40.0
    # the point of it all: on tasks it never saw, the company's adapter automates acme far better than the base
    assert adapter["exact_match"] >= base["exact_match"] + 0.4, (adapter, base)


def test_bad_data_and_impossible_requests_are_rejected_with_reasons(trainer_settings: Settings) -> None:
    settings = trainer_settings
    company = f"acme{uuid.uuid4().hex[:6]}"
    register_demo_tools(settings, company)
    bad = inline(3) + [{"task": "t", "payload_json": "{}", "tool_name": "no_such_tool", "arguments_json": "{}"},
                       {"task": "t", "payload_json": "{}", "tool_name": "zx_post", "arguments_json": "{oops"}]
    few = request(settings, company, bad)
    qlora = request(settings, company, inline(60), method="QLORA", allow_fallback=False)
    too_big = request(settings, company, inline(60), rank=64)
    nobody = request(settings, f"notools{uuid.uuid4().hex[:6]}", inline(60))
    with RunningWorker(settings):
        failed = {rid: outcome(settings, rid)[0] for rid in (few, qlora, too_big, nobody)}
    assert all(e.type == "training_failed" for e in failed.values())
    assert failed[few]["error_kind"] == "bad_data"
    assert dict(failed[few]["reason_counts"]) == {"unknown_tool": 1, "invalid_arguments_json": 1, "too_few": 3}
    import torch

    if not torch.cuda.is_available():
        assert failed[qlora]["error_kind"] == "no_cuda" and "QLoRA needs CUDA" in failed[qlora]["error"]
    assert failed[too_big]["error_kind"] == "bad_request" and "exceeds" in failed[too_big]["error"]
    assert failed[nobody]["error_kind"] == "bad_data" and "no registered tools" in failed[nobody]["error"]
    assert LocalAdapterRegistry(settings.home / "adapters").list(company) == []


def test_a_killed_trainer_resumes_and_publishes_once(trainer_settings: Settings) -> None:
    settings = trainer_settings
    company = f"acme{uuid.uuid4().hex[:6]}"
    register_demo_tools(settings, company)
    request_id = request(settings, company, inline(120), max_steps=150, force=True)
    env = {**os.environ, "CDA_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "CDA_TOPIC_PREFIX": settings.topic_prefix,
           "CDA_HOME": str(settings.home), "CDA_VLLM_URL": settings.vllm_url, "CDA_BASE_MODEL": settings.base_model_path}
    first = subprocess.Popen([sys.executable, "-m", "cda.cli.main", "trainer", "run"], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    checkpoint = settings.home / "trainer" / "work" / company / request_id / "checkpoint" / "state.json"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert checkpoint.exists(), "the first trainer never wrote a checkpoint"
    os.killpg(first.pid, signal.SIGKILL)  # killed mid-run: no goodbye, no commit
    first.wait()
    resumed_from = json.loads(checkpoint.read_text())["step"]
    assert 0 < resumed_from < 150
    with RunningWorker(settings):  # the same group: the uncommitted request comes back
        final, progress = outcome(settings, request_id)
    assert final.type == "lora_adapter_ready"
    registry = LocalAdapterRegistry(settings.home / "adapters")
    assert [v.version for v in registry.list(company)] == [final["version"]]
    assert not [p for p in (settings.home / "adapters" / company).iterdir() if p.name.startswith(".staging")]
    steps = [p["step"] for p in progress]
    assert steps[-1] == 150 and steps.count(150) >= 1
