"""The training flow on the real broker, the real vLLM server and CPU training: request -> trainer ->
adapter -> evaluated -> stored -> lora_adapter_ready -> served; bad data, QLoRA without CUDA, kill-and-resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.grounding import load as load_grounding
from core.prompts import ToolSpec
from core.retry import RetryPolicy
from core.settings import Settings, settings_env
from inference.lifecycle import AdapterManager
from inference.routing import AdapterRouter, served_name
from inference.vllm_api import VllmApi
from tests.helpers import eventually, running
from tests.trainer.support import committed, inline, outcome, outcomes, register_demo_tools, request
from topics.events import Event
from topics.producer import EventProducer
from trainer.evaluate import evaluate
from trainer.examples import Example
from trainer.registry import LocalAdapterRegistry
from trainer.steps import with_done_steps
from trainer.synthetic import DEMO_TOOLS, demo_examples
from trainer.train import TrainConfig, train_adapter
from trainer.worker import TrainerWorker

pytestmark = [pytest.mark.kafka, pytest.mark.vllm, pytest.mark.timeout(1200)]  # CPU training and a vLLM start
Catalog = Callable[..., Settings]
ROOT = Path(__file__).resolve().parents[2]


def progress_of(settings: Settings, request_id: str) -> list[Event]:
    from tests.trainer.support import read_all

    events = [r.event for r in read_all(settings, "lora_training_status")
              if r.event.type == "training_progress" and r.event.data.get("request_id") == request_id]
    return sorted(events, key=lambda e: e.occurred_at)


@contextmanager
def RunningWorker(settings: Settings, defaults: TrainConfig | None = None) -> Iterator[TrainerWorker]:  # noqa: N802
    worker = TrainerWorker(settings, defaults or TrainConfig(max_steps=150, checkpoint_every=50))
    with running(worker.run, "trainer"):
        yield worker


def test_a_request_becomes_a_stored_announced_and_served_adapter(served_settings: Settings) -> None:
    settings = served_settings
    company = f"acme{uuid.uuid4().hex[:6]}"
    register_demo_tools(settings, company)
    forced = request(settings, company, inline(400), max_steps=60, force=True)  # the loss is ~0 by step 60
    gated = request(settings, company, inline(240, seed=2), max_steps=30)
    with RunningWorker(settings):
        final, progress = outcome(settings, forced, 900), progress_of(settings, forced)
        decision = outcome(settings, gated, 900)
    assert final.type == "lora_adapter_ready", final.to_json()
    assert progress and progress[-1]["step"] == 60 and [p["step"] for p in progress] == sorted(p["step"] for p in progress)
    metrics = dict(final["metrics"])
    assert {"exact_match", "json_valid", "baseline_exact_match", "baseline_json_valid", "train_loss"} <= set(metrics)
    assert metrics["json_valid"] == 1.0  # guided decoding: every eval answer is a schema-valid call
    registry = LocalAdapterRegistry(settings.home / "adapters")
    stored = registry.get(company, final["version"])
    assert stored.request_id == forced and stored.dataset_hash == final["dataset_hash"]
    rules = load_grounding(Path(stored.path)).to_json()  # learnt from its examples, served with it
    assert rules["zx_post"]["ref"]["prefixes"] == ["ACME-"] and rules["kr_sync"]["zip"]["sources"] == ["data.postcode"]
    # the gate: the second adapter is announced only if it beats the first on its eval split
    if decision.type == "training_rejected":  # it did not beat the first, or fell below the absolute floor
        candidate = dict(decision["candidate_metrics"])["exact_match"]
        assert candidate <= dict(decision["current_metrics"])["exact_match"] or candidate < decision["floor"], decision.to_json()
        assert decision["reason"].split(":")[0] in ("not_better", "below_floor"), decision["reason"]
    else:
        assert decision.type == "lora_adapter_ready"
        assert dict(decision["metrics"])["exact_match"] > dict(decision["metrics"])["baseline_exact_match"]
    # served: the lifecycle loads it, and vLLM answers with it on fresh held-out tasks
    manager = AdapterManager(settings, VllmApi(settings.vllm_url), AdapterRouter(), EventProducer(settings))
    assert manager.handle_ready(final).type == "adapter_activated"
    assert manager.router.get(company).grounding.to_json() == rules
    seen = {e.content_hash for e in demo_examples(400, seed=1)}
    held_out = [e for e in demo_examples(80, seed=777) if e.content_hash not in seen][:40]
    adapter = evaluate(settings.vllm_url, served_name(company), held_out, list(DEMO_TOOLS))
    base = evaluate(settings.vllm_url, settings.served_base_name, held_out, list(DEMO_TOOLS))
    assert adapter["json_valid"] == 1.0 and adapter["eval_examples"] == 40.0
    # the point of it all: on tasks it never saw, the company's adapter automates acme far better than the base
    assert adapter["exact_match"] >= base["exact_match"] + 0.4, (adapter, base)


def test_bad_data_and_impossible_requests_are_rejected_with_reasons(served_settings: Settings) -> None:
    settings = served_settings
    company = f"acme{uuid.uuid4().hex[:6]}"
    register_demo_tools(settings, company)
    bad = inline(3) + [{"task": "t", "payload_json": "{}", "tool_name": "no_such_tool", "arguments_json": "{}"},
                       {"task": "t", "payload_json": "{}", "tool_name": "zx_post", "arguments_json": "{oops"}]
    few = request(settings, company, bad)
    qlora = request(settings, company, inline(60), method="QLORA", allow_fallback=False)
    too_big = request(settings, company, inline(60), rank=64)
    nobody = request(settings, f"notools{uuid.uuid4().hex[:6]}", inline(60))
    with RunningWorker(settings):
        failed = {rid: outcome(settings, rid, 300) for rid in (few, qlora, too_big, nobody)}
    assert all(e.type == "training_failed" for e in failed.values())
    assert failed[few]["error_kind"] == "bad_data"
    assert dict(failed[few]["reason_counts"]) == {"unknown_tool": 1, "invalid_arguments_json": 1, "too_few": 3}
    import torch

    if not torch.cuda.is_available():
        assert failed[qlora]["error_kind"] == "no_cuda" and "QLoRA needs CUDA" in failed[qlora]["error"]
    assert failed[too_big]["error_kind"] == "bad_request" and "exceeds" in failed[too_big]["error"]
    assert failed[nobody]["error_kind"] == "bad_data" and "no registered tools" in failed[nobody]["error"]
    assert LocalAdapterRegistry(settings.home / "adapters").list(company) == []


def test_a_killed_trainer_resumes_and_publishes_once(served_settings: Settings) -> None:
    settings = served_settings
    company = f"acme{uuid.uuid4().hex[:6]}"
    register_demo_tools(settings, company)
    request_id = request(settings, company, inline(120), max_steps=100, force=True)
    env = settings_env(settings)
    first = subprocess.Popen([sys.executable, "-m", "cda.cli.main", "trainer", "run"], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    checkpoint = settings.home / "trainer" / "work" / company / request_id / "checkpoint" / "state.json"
    eventually(checkpoint.exists, 300, "the first trainer's checkpoint")
    assert checkpoint.exists(), "the first trainer never wrote a checkpoint"
    os.killpg(first.pid, signal.SIGKILL)  # killed mid-run: no goodbye, no commit
    first.wait()
    resumed_from = json.loads(checkpoint.read_text())["step"]
    assert 0 < resumed_from < 100
    with RunningWorker(settings):  # the same group: the uncommitted request comes back
        final, progress = outcome(settings, request_id, 900), progress_of(settings, request_id)
    assert final.type == "lora_adapter_ready"
    registry = LocalAdapterRegistry(settings.home / "adapters")
    assert [v.version for v in registry.list(company)] == [final["version"]]
    assert not [p for p in (settings.home / "adapters" / company).iterdir() if p.name.startswith(".staging")]
    steps = [p["step"] for p in progress]
    assert steps[-1] == 100 and steps.count(100) >= 1


def _register(settings: Settings, company_id: str, tools: tuple[ToolSpec, ...]) -> None:
    with EventProducer(settings) as producer:
        for tool in tools:
            producer.produce(Event.new("tool_registered", company_id, tool_name=tool.name, description=tool.description,
                                       parameters_schema_json=json.dumps(tool.parameters),
                                       url=f"https://{company_id}.example/{tool.name}"))


PICK = ToolSpec("pick", "Pick the level of a case", {
    "type": "object", "properties": {"level": {"type": "string", "enum": ["a", "b"]}}, "required": ["level"],
    "additionalProperties": False})


def picks(level: str, n: int = 40) -> list[Example]:
    """Cases whose answer is always `level`: a choice guided decoding leaves to the model, learnt in a few steps."""
    return [Example(f"Pick the level for case {i}", json.dumps({"case": i}), "pick", {"level": level}) for i in range(n)]


def _serve_trained(settings: Settings, company_id: str, level: str) -> str:
    """Train an adapter that always picks `level` (and answers done after it, as the trainer teaches), store it and
    announce it as served (`adapter_activated`)."""
    config = TrainConfig(max_steps=40, learning_rate=5e-3, batch_size=8, rank=8)
    result = train_adapter(settings.base_model_path, with_done_steps(picks(level), 0.5), [PICK], config,
                           settings.home / "scratch" / company_id)
    stored = LocalAdapterRegistry(settings.home / "adapters").publish(company_id, result.adapter_dir, {
        "base_model": settings.base_model_path, "rank": 8, "dataset_hash": level, "request_id": f"served-{level}",
        "metrics": {}})
    with EventProducer(settings) as producer:
        producer.produce(Event.new("adapter_activated", company_id, version=stored.version, served_name=served_name(company_id),
                                   uri=f"file://{stored.path}", base_model=settings.base_model_path, rank=8))
    return stored.version


def test_the_gate_compares_the_candidate_with_what_is_served(served_settings: Settings) -> None:
    """Data that forces each outcome, whatever the base knows. Both companies ask for an adapter that picks "a".
    One is served an adapter that always picks "b": a candidate trained on "a" beats it, published. The other is
    served one that always picks "a" (exact 1.0, which nothing can beat): a candidate is rejected."""
    settings = served_settings
    beaten, unbeatable = f"beaten{uuid.uuid4().hex[:6]}", f"unbeat{uuid.uuid4().hex[:6]}"
    served = {}
    for name, level in ((beaten, "b"), (unbeatable, "a")):
        _register(settings, name, (PICK,))
        served[name] = _serve_trained(settings, name, level)
    wanted = [{"task": e.task, "payload_json": e.payload_json, "tool_name": e.tool_name,
               "arguments_json": json.dumps(e.arguments)} for e in picks("a")]
    published = request(settings, beaten, wanted, max_steps=30, learning_rate=5e-3)
    rejected = request(settings, unbeatable, wanted, max_steps=30, learning_rate=5e-3)
    with RunningWorker(settings, TrainConfig(batch_size=8, rank=8)):
        yes, no = outcome(settings, published, 900), outcome(settings, rejected, 900)
    assert yes.type == "lora_adapter_ready", yes.to_json()
    metrics = dict(yes["metrics"])
    assert metrics["exact_match"] > metrics["baseline_exact_match"], metrics
    assert no.type == "training_rejected", no.to_json()
    assert dict(no["current_metrics"])["exact_match"] == 1.0, no.to_json()
    registry = LocalAdapterRegistry(settings.home / "adapters")
    assert registry.get(beaten, yes["version"]).baseline == served[beaten]  # compared with what is served
    assert registry.get(unbeatable, no["version"]).baseline == served[unbeatable]


class FlakyVllm:
    """A proxy in front of the real vLLM that answers 503 to every completion while `down` (an overloaded or
    restarting server behind a load balancer); everything else goes through."""

    def __init__(self, target: str) -> None:
        import http.server

        import httpx

        proxy = self
        self.down = True
        self.refused = 0
        upstream = httpx.Client(base_url=target, timeout=120)

        class Handler(http.server.BaseHTTPRequestHandler):
            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if proxy.down and self.path.startswith("/v1/completions"):
                    proxy.refused += 1
                    self._answer(503, b'{"error": "overloaded"}')
                    return
                answer = upstream.request(self.command, self.path, content=body,
                                          headers={"content-type": self.headers.get("content-type", "application/json")})
                self._answer(answer.status_code, answer.content)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _relay  # noqa: N815

            def log_message(self, *_: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FlakyVllm:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def test_a_vllm_outage_during_evaluation_is_retried_not_failed(served_settings: Settings) -> None:
    """vLLM answers 503 while the candidate is evaluated: the request is neither failed nor committed; once
    vLLM answers again, it is evaluated and announced (before: training_failed/internal, committed)."""
    settings = served_settings
    name = f"acme{uuid.uuid4().hex[:6]}"
    register_demo_tools(settings, name)
    with FlakyVllm(settings.vllm_url) as vllm:
        flaky = settings.model_copy(update={"vllm_url": vllm.url})
        request_id = request(flaky, name, inline(40), max_steps=2, force=True)
        worker = TrainerWorker(flaky, TrainConfig(batch_size=4), eval_policy=RetryPolicy(attempts=2, deadline_s=5, backoff_s=0.05))
        with running(worker.run, "trainer"):
            eventually(lambda: vllm.refused >= 4, 300, "two evaluation attempts meeting the outage")
            assert outcomes(flaky, request_id) == [] and committed(flaky) == []
            vllm.down = False
            final = outcome(flaky, request_id, 300)
    assert final.type == "lora_adapter_ready", final.to_json()


def test_a_gate_that_cannot_run_rejects_with_a_reason(served_settings: Settings) -> None:
    """vLLM stays down past the gate's patience: the candidate is rejected as `gate_unavailable` (never served by
    default), the request committed, and the stored version carries no exact match to be mistaken for a score."""
    settings = served_settings.model_copy(update={"trainer_gate_patience_s": 0.0})
    name = f"acme{uuid.uuid4().hex[:6]}"
    register_demo_tools(settings, name)
    with FlakyVllm(settings.vllm_url) as vllm:
        flaky = settings.model_copy(update={"vllm_url": vllm.url})
        request_id = request(flaky, name, inline(40), max_steps=2)
        worker = TrainerWorker(flaky, TrainConfig(batch_size=4), eval_policy=RetryPolicy(attempts=2, deadline_s=5, backoff_s=0.05))
        with running(worker.run, "trainer"):
            final = outcome(flaky, request_id, 300)
            eventually(lambda: committed(flaky) != [], 60, "the rejected request committed")
    assert final.type == "training_rejected", final.to_json()
    assert str(final["reason"]).startswith("gate_unavailable: the candidate could not be gated"), final["reason"]
    assert vllm.refused >= 2 and "exact_match" not in final["candidate_metrics"]
    assert not [e for e in outcomes(flaky, request_id) if e.type == "lora_adapter_ready"]
