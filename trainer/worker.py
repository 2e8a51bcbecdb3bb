"""The trainer worker: a consumer of `lora_training_requests` that turns each request into an adapter —
data checked, LoRA/QLoRA trained with progress events, evaluated through vLLM against the company's
current model, stored in the registry, and announced on `lora_adapter_ready` only if it is better.

At-least-once: the request's offset is committed after its outcome is published. A trainer killed
mid-run meets the request again and resumes from its checkpoint; the registry never shows a partial
version, and a version already stored for the request is announced again rather than retrained.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

from cda.settings import Settings
from inference.errors import InferenceUnavailable
from inference.routing import served_name
from inference.vllm_api import VllmApi
from topics.consumer import EventConsumer
from topics.events import Event
from topics.producer import EventProducer
from trainer.dataset import BadData, Dataset, build_dataset
from trainer.evaluate import evaluate
from trainer.examples import Example
from trainer.registry import AdapterVersion, LocalAdapterRegistry
from trainer.sources import company_tools, history_examples
from trainer.train import TrainConfig, TrainingRejected, train_adapter

log = logging.getLogger(__name__)
GROUP_ID = "cda-trainer"


def config_from(request: Event, defaults: TrainConfig) -> TrainConfig:
    data = request.data
    return TrainConfig(
        rank=data.get("rank") or defaults.rank,
        learning_rate=data.get("learning_rate") or defaults.learning_rate,
        max_steps=data.get("max_steps") or defaults.max_steps,
        batch_size=defaults.batch_size,
        method=str(data.get("method") or "LORA"),
        allow_fallback=bool(data.get("allow_fallback", True)),
        seed=defaults.seed,
        checkpoint_every=defaults.checkpoint_every,
    )


class TrainerWorker:
    def __init__(self, settings: Settings, defaults: TrainConfig = TrainConfig(), max_examples: int = 2000) -> None:
        self.settings = settings
        self.defaults = defaults
        self.max_examples = max_examples
        self.registry = LocalAdapterRegistry(settings.home / "adapters")
        self.work_root = settings.home / "trainer" / "work"
        self.producer = EventProducer(settings)
        self.vllm = VllmApi(settings.vllm_url, timeout_s=120)

    # -- one request ------------------------------------------------------------------------------
    def handle(self, request: Event) -> Event:
        company, request_id = request.company_id, str(request["request_id"])
        stored = self.registry.find_by_request(company, request_id)
        if stored is not None:  # redelivered after the version was stored: announce, do not retrain
            return self._decide(request, stored, force=bool(request.data.get("force")))
        try:
            config = config_from(request, self.defaults)
        except ValueError as exc:
            return self._failed(request, str(exc), "bad_request")
        if config.rank > self.settings.vllm_max_lora_rank:
            return self._failed(request, f"rank {config.rank} exceeds the server's maximum "
                                         f"{self.settings.vllm_max_lora_rank}", "bad_request")
        try:
            dataset = self._dataset(request)
        except BadData as exc:
            return self._failed(request, str(exc), "bad_data", exc.counts)
        work_dir = self.work_root / company / request_id
        try:
            result = train_adapter(str(request["base_model"]), list(dataset.train), list(dataset.tools), config, work_dir,
                                   progress=self._progress(request, config.max_steps))
        except TrainingRejected as exc:
            return self._failed(request, str(exc), "no_cuda")
        self._status(request, "training_progress", step=config.max_steps, total_steps=config.max_steps,
                     loss=result.final_loss, phase="evaluate")
        candidate, current = self._evaluate(request, result.adapter_dir, dataset)
        metrics = {**candidate, **{f"baseline_{k}": v for k, v in current.items()}, "train_loss": result.final_loss,
                   "train_examples": float(len(dataset.train)), "fell_back_to_lora": float(result.method != config.method)}
        stored = self.registry.publish(company, result.adapter_dir, {
            "base_model": str(request["base_model"]), "rank": config.rank, "dataset_hash": dataset.content_hash,
            "request_id": request_id, "metrics": metrics})
        shutil.rmtree(work_dir, ignore_errors=True)
        return self._decide(request, stored, force=bool(request.data.get("force")))

    def _dataset(self, request: Event) -> Dataset:
        tools = company_tools(self.settings, request.company_id)
        if not tools:
            raise BadData(f"company {request.company_id} has no registered tools", {"no_tools": 1})
        unreadable = 0
        if request["source"] == "FROM_HISTORY":
            examples = history_examples(self.settings, request.company_id)
        else:
            examples = []
            for raw in request["examples"]:
                try:
                    arguments = json.loads(raw["arguments_json"])
                except json.JSONDecodeError:
                    unreadable += 1
                    continue
                examples.append(Example(raw["task"], raw["payload_json"], raw["tool_name"], arguments))
        try:
            return build_dataset(examples, tools, max_examples=request.data.get("max_examples") or self.max_examples)
        except BadData as exc:
            if unreadable:
                exc.counts["invalid_arguments_json"] = unreadable
            raise

    def _evaluate(self, request: Event, adapter_dir: Path, dataset: Dataset) -> tuple[dict[str, float], dict[str, float]]:
        company = request.company_id
        candidate_name = f"eval-{company}-{uuid.uuid4().hex[:8]}"
        response = self.vllm.load_adapter(candidate_name, str(adapter_dir))
        if response.status_code != 200:
            raise InferenceUnavailable(f"vLLM refused the candidate adapter: {response.text[:300]}")
        try:
            tools, examples = list(dataset.tools), list(dataset.eval)
            candidate = evaluate(self.settings.vllm_url, candidate_name, examples, tools)
            current_name = served_name(company) if served_name(company) in self.vllm.models() else self.settings.served_base_name
            current = evaluate(self.settings.vllm_url, current_name, examples, tools)
        finally:
            self.vllm.unload_adapter(candidate_name)
        return candidate, current

    def _decide(self, request: Event, stored: AdapterVersion, force: bool) -> Event:
        candidate = {k: v for k, v in stored.metrics.items() if not k.startswith("baseline_")}
        current = {k.removeprefix("baseline_"): v for k, v in stored.metrics.items() if k.startswith("baseline_")}
        if force or candidate.get("exact_match", 0.0) > current.get("exact_match", 0.0):
            self.registry.activate(request.company_id, stored.version)
            return self._publish(Event.new(
                "lora_adapter_ready", request.company_id, request_id=str(request["request_id"]),
                adapter_name=served_name(request.company_id), version=stored.version, uri=f"file://{stored.path}",
                base_model=stored.base_model, rank=stored.rank, dataset_hash=stored.dataset_hash,
                metrics={k: float(v) for k, v in stored.metrics.items()}))
        return self._status(request, "training_rejected", version=stored.version, candidate_metrics=candidate,
                            current_metrics=current)

    # -- events -----------------------------------------------------------------------------------
    def _progress(self, request: Event, total: int) -> Any:
        every = max(1, total // 20)

        def report(step: int, steps: int, loss: float) -> None:
            if step % every == 0 or step == steps:
                self._status(request, "training_progress", step=step, total_steps=steps, loss=loss, phase="train")
        return report

    def _failed(self, request: Event, error: str, kind: str, counts: dict[str, int] | None = None) -> Event:
        log.warning("training request %s of %s failed: %s", request["request_id"], request.company_id, error)
        return self._status(request, "training_failed", error=error, error_kind=kind, reason_counts=counts or {})

    def _status(self, request: Event, event_type: str, **fields: Any) -> Event:
        return self._publish(Event.new(event_type, request.company_id, request_id=str(request["request_id"]), **fields))

    def _publish(self, event: Event) -> Event:
        self.producer.produce(event)
        self.producer.flush()
        return event

    # -- the consumer loop ------------------------------------------------------------------------
    def run(self, stop: threading.Event, group_id: str = GROUP_ID) -> None:
        """Train requests one at a time until `stop`; a request is committed once its outcome is out.

        When vLLM is unavailable for the evaluation, the request stays uncommitted and the worker joins
        again after a pause: the request comes back and resumes from its checkpoint.
        """
        while not stop.is_set():
            try:
                self._consume(stop, group_id)
            except InferenceUnavailable as exc:
                log.error("evaluation needs vLLM, which is unavailable; retrying the request: %s", exc)
                stop.wait(5.0)

    def _consume(self, stop: threading.Event, group_id: str) -> None:
        with EventConsumer(self.settings, group_id, **{"max.poll.interval.ms": 3_600_000}) as consumer:
            consumer.subscribe(["lora_training_requests"])
            while not stop.is_set():
                for received in consumer.poll(0.5, max_records=1):
                    try:
                        self.handle(received.event)
                    except InferenceUnavailable:
                        raise
                    except Exception as exc:  # a bug or a broken model: report it, do not stall the partition
                        log.exception("training request %s failed", received.event["request_id"])
                        self._failed(received.event, f"{type(exc).__name__}: {exc}", "internal")
                    consumer.commit()
