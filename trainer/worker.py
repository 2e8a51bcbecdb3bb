"""The trainer worker: a consumer of `lora_training_requests` that turns each request into an adapter —
data checked, LoRA/QLoRA trained with progress events, evaluated through vLLM against what the company is
served now, stored in the registry, and announced on `lora_adapter_ready` only if it is better.

At-least-once reading, one outcome each: the request's offset is committed after its outcome is published, and
the outcome is recorded beside the request's work folder (`<id>.ended`) until that commit holds. A trainer killed
mid-run meets the request again and resumes from its checkpoint; the registry never shows a partial version, and
a version already stored for the request is announced rather than retrained. A request met again after its
outcome was published (the commit failed as a broker was lost and the group moved on) is committed without a
second outcome.

Failures by kind: a request the trainer will not do gets `training_failed` with the field at fault; an
outage (broker, vLLM) raises a transient error, nothing is committed and the worker joins again later
(`core.workers.run_until_stopped`); a record it cannot handle at all (another event type, ids that are no
identifiers, a bug) goes to `dead_letters` with the reason, and the worker goes on.

One request, one worker: `trainer.requests.exclusive` holds its work folder while it is handled; the
gate's verdict is `trainer.gate.rejection`.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from context.memory import MemoryEntry
from context.prompt_context import recallable
from context.reads import read_memory
from core.errors import TransientError, is_transient
from core.grounding import learn as learn_grounding
from core.grounding import save as save_grounding
from core.paths import UnsafePath, safe_join
from core.prompts import PROMPT_VERSION
from core.retry import RetryPolicy
from core.settings import Settings
from core.workers import run_until_stopped
from inference.adapter_store import configured as store_configured
from inference.adapter_store import publish as publish_adapter
from inference.errors import InferenceUnavailable
from inference.routing import served_name
from topics.consumer import EventConsumer, Received
from topics.events import Event
from topics.handling import handle_each
from topics.producer import EventProducer
from trainer.comparison import Comparison
from trainer.context import training_context
from trainer.dataset import BadData
from trainer.errors import BadRequest, RequestBusy, TrainerError
from trainer.evaluate import DEFAULT_POLICY
from trainer.examples_store import release_examples
from trainer.gate import rejection
from trainer.queue import TrainingQueue
from trainer.registry import AdapterVersion, LocalAdapterRegistry
from trainer.requests import bounded, config_from, exclusive
from trainer.sources import request_dataset
from trainer.steps import DONE_SHARE, with_done_steps
from trainer.train import TrainConfig, TrainingRejected, fitted_config, train_adapter

log = logging.getLogger(__name__)
GROUP_ID = "cda-trainer"
MAX_POLL_INTERVAL_MS = 3_600_000


class NotATrainingRequest(TrainerError):
    """A record on `lora_training_requests` that is no training request."""


class GroupLost(TrainerError, TransientError):
    """The commit after an outcome failed: the group moved on (a rebalance); join again."""


class TrainerWorker:
    def __init__(self, settings: Settings, defaults: TrainConfig | None = None, max_examples: int = 2000,
                 eval_policy: RetryPolicy = DEFAULT_POLICY) -> None:
        self.settings = settings
        self.defaults = defaults  # None: fitted to each request's data (`trainer.train.fitted_config`)
        self.max_examples = max_examples
        self.registry = LocalAdapterRegistry(settings.home / "adapters")
        self.work_root = settings.home / "trainer" / "work"
        self.producer = EventProducer(settings)
        self.comparison = Comparison(settings, self.registry, eval_policy)
        self.busy = 0  # how often a request was found held by another worker (and left uncommitted)

    # -- one request ------------------------------------------------------------------------------
    def handle(self, request: Event) -> Event | None:
        """The outcome of one request, published (None: it was published before); raises on outages (transient)
        and on what it cannot handle."""
        company, request_id = request.company_id, str(request["request_id"])
        try:
            work_dir = safe_join(self.work_root, company, request_id)
        except UnsafePath as exc:  # a training_failed can only be published for ids of the contract's form
            return self._failed(request, str(exc), "bad_request")
        ended = work_dir.with_name(f"{work_dir.name}.ended")
        try:
            with exclusive(work_dir.with_name(f"{work_dir.name}.lock")):
                if ended.exists():
                    log.info("training request %s of %s met again after its outcome (%s): not published twice",
                             request_id, company, ended.read_text().strip())
                    return None
                outcome = self._handle_locked(request, work_dir)
                ended.write_text(f"{outcome.type} {outcome.event_id}\n")
                return outcome
        except RequestBusy:
            self.busy += 1
            raise

    def release(self, request: Event) -> None:
        """The request has ended and its offset is committed (it will not come again): its stored examples file
        goes once no other request holds it, and the record of its outcome with it. A failure here is logged; it
        changes no outcome."""
        try:
            work_dir = safe_join(self.work_root, request.company_id, str(request["request_id"]))
            work_dir.with_name(f"{work_dir.name}.ended").unlink(missing_ok=True)
        except (UnsafePath, OSError):
            pass
        if not (ref := request.data.get("examples_ref")):
            return
        try:
            release_examples(self.settings, request.company_id, str(ref), str(request["request_id"]))
        except OSError:
            log.warning("could not release the examples of request %s of %s", request.data.get("request_id"),
                        request.company_id, exc_info=True)

    def _handle_locked(self, request: Event, work_dir: Path) -> Event:
        company, request_id = request.company_id, str(request["request_id"])
        force = bool(request.data.get("force"))
        stored = self.registry.find_by_request(company, request_id)
        if stored is not None:  # redelivered after the version was stored: announce, do not retrain
            return self._decide(request, stored, force=force)
        try:
            config_from(request, self.defaults or TrainConfig(), self.settings)  # out of bounds: refused before the data is read
            max_examples = bounded(request.data, "max_examples", self.max_examples, 1, self.settings.trainer_max_examples,
                                    "the largest allowed (CDA_TRAINER_MAX_EXAMPLES)")
            dataset = request_dataset(self.settings, request, max_examples)
            defaults = self.defaults or fitted_config(len(dataset.train), self.settings.vllm_max_lora_rank)
            config = config_from(request, defaults, self.settings)
        except (BadRequest, ValueError) as exc:
            return self._failed(request, str(exc), "bad_request")
        except BadData as exc:
            return self._failed(request, str(exc), "bad_data", exc.counts)
        memory = self.memory(company)
        shown = with_done_steps(training_context(dataset.train, dataset.tools, memory, self.settings,
                                                 seed=dataset.content_hash), DONE_SHARE, seed=dataset.content_hash)
        try:
            result = train_adapter(str(request["base_model"]), shown, list(dataset.tools), config, work_dir,
                                   progress=self._progress(request, config.max_steps))
        except TrainingRejected as exc:
            return self._failed(request, str(exc), "no_cuda")
        tools = list(dataset.tools)  # the arguments its examples always copy: asked as copies wherever it serves
        save_grounding(result.adapter_dir, learn_grounding(((e.context(tools), e.tool_name, e.arguments)
                                                            for e in shown), tools))
        self._status(request, "training_progress", step=config.max_steps, total_steps=config.max_steps,
                     loss=result.final_loss, phase="evaluate")
        unavailable = None
        try:
            candidate, current, baseline = self.comparison.compare(company, result.adapter_dir, dataset, memory)
        except InferenceUnavailable as exc:  # retried over redeliveries for a while, then rejected: never passed
            waited = self._gate_waited(work_dir)
            if waited < self.settings.trainer_gate_patience_s:
                raise
            candidate, current, baseline = {}, {}, ""
            unavailable = (f"gate_unavailable: the candidate could not be gated for {waited:.0f} s "
                           f"(CDA_TRAINER_GATE_PATIENCE_S); an unscored adapter is never served: {exc}")
        metrics = {**candidate, **{f"baseline_{k}": v for k, v in current.items()}, "train_loss": result.final_loss,
                   "train_examples": float(len(dataset.train)), "fell_back_to_lora": float(result.method != config.method)}
        stored = self.registry.publish(company, result.adapter_dir, {
            "base_model": str(request["base_model"]), "rank": config.rank, "dataset_hash": dataset.content_hash,
            "request_id": request_id, "metrics": metrics, "baseline": baseline, "prompt_version": PROMPT_VERSION})
        shutil.rmtree(work_dir, ignore_errors=True)
        return self._decide(request, stored, force=force, why=unavailable)

    @staticmethod
    def _gate_waited(work_dir: Path) -> float:
        """Seconds since the gate first found vLLM unreachable for this request (kept in its work folder, so
        the wait spans redeliveries and restarts)."""
        mark = work_dir / "gate_unavailable_since"
        if not mark.exists():
            mark.parent.mkdir(parents=True, exist_ok=True)
            mark.write_text(str(time.time()))
        return max(0.0, time.time() - float(mark.read_text() or 0))

    def memory(self, company: str) -> list[MemoryEntry]:
        """The company's memory now, as the agents may recall it into a prompt (`context.prompt_context`)."""
        return recallable(read_memory(self.settings), company, self.settings)

    def _uri(self, stored: AdapterVersion) -> str:
        """Where inference finds the version: the adapter store when one is configured (the HTTP registry or S3;
        inference then needs no disk shared with this worker), else the local folder."""
        if store_configured(self.settings):
            return publish_adapter(self.settings, Path(stored.path))
        return f"file://{stored.path}"

    def _decide(self, request: Event, stored: AdapterVersion, force: bool, why: str | None = None) -> Event:
        candidate = {k: v for k, v in stored.metrics.items() if not k.startswith("baseline_")}
        current = {k.removeprefix("baseline_"): v for k, v in stored.metrics.items() if k.startswith("baseline_")}
        floor = self.settings.trainer_min_exact_match
        why = why or rejection(candidate, current, floor, self.settings.trainer_min_kind_examples)
        if force or why is None:
            return self._publish(Event.new(
                "lora_adapter_ready", request.company_id, request_id=str(request["request_id"]),
                adapter_name=served_name(request.company_id), version=stored.version, uri=self._uri(stored),
                base_model=stored.base_model, rank=stored.rank, dataset_hash=stored.dataset_hash,
                metrics={k: float(v) for k, v in stored.metrics.items()}))
        return self._status(request, "training_rejected", version=stored.version, candidate_metrics=candidate,
                            current_metrics=current, reason=why, floor=floor)

    # -- events -----------------------------------------------------------------------------------
    def _progress(self, request: Event, total: int) -> Any:
        every = max(1, total // 20)

        def report(step: int, steps: int, loss: float) -> None:
            if step % every == 0 or step == steps:
                self._status(request, "training_progress", step=step, total_steps=steps, loss=loss, phase="train")
        return report

    def _failed(self, request: Event, error: str, kind: str, counts: dict[str, int] | None = None) -> Event:
        log.warning("training request %s of %s failed: %s", request.data.get("request_id"), request.company_id, error)
        return self._status(request, "training_failed", error=error, error_kind=kind, reason_counts=counts or {})

    def _status(self, request: Event, event_type: str, **fields: Any) -> Event:
        return self._publish(Event.new(event_type, request.company_id, request_id=str(request["request_id"]), **fields))

    def _publish(self, event: Event) -> Event:
        self.producer.produce(event)
        self.producer.flush()
        return event

    # -- the consumer loop ------------------------------------------------------------------------
    def handle_record(self, received: Received) -> None:
        """One record: its outcome is published, or it raises (transient: retried; else: dead-lettered)."""
        event = received.event
        if event.type != "lora_training_requested":
            raise NotATrainingRequest(f"a {event.type} event is no training request")
        try:
            self.handle(event)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.exception("training request %s of %s failed", event.data.get("request_id"), event.company_id)
            try:  # tell whoever follows the request; the record itself goes to dead_letters with the reason
                self._failed(event, f"{type(exc).__name__}: {exc}", "internal")
            except Exception as report:
                if is_transient(report):
                    raise
                log.warning("could not publish training_failed for it: %s", report)
            raise

    def run(self, stop: threading.Event, group_id: str = GROUP_ID) -> None:
        """Train requests one at a time, round robin by company (`trainer.queue`), until `stop`; offsets are
        committed below the lowest request not ended once each outcome is out.

        Outages (vLLM during the evaluation, the broker, a request held by another worker) leave the
        request uncommitted: the worker joins again after a pause and the request comes back, resuming
        from its checkpoint.
        """
        run_until_stopped(stop, lambda s: self._session(s, group_id), name="trainer")

    def _session(self, stop: threading.Event, group_id: str) -> None:
        queue = TrainingQueue(self.settings.trainer_read_ahead)
        with EventConsumer(self.settings, group_id, **{"max.poll.interval.ms": MAX_POLL_INTERVAL_MS}) as consumer:
            consumer.subscribe(["lora_training_requests"], on_revoke=queue.drop)
            while not stop.is_set():
                if queue.room:  # a short look when requests wait, so reading ahead never delays training
                    for received in consumer.poll(0.5 if not len(queue) else 0.05, max_records=queue.room):
                        queue.add(received)
                received = queue.take()
                if received is None:
                    continue
                handle_each(consumer, [received], self.handle_record)
                queue.ended(received)
                offsets = queue.committable(consumer.positions())
                try:
                    consumer.commit(offsets)
                except KafkaException as exc:
                    raise GroupLost(f"could not commit the request's offset (the group moved on): {exc}") from exc
                for behind in queue.committed(offsets):  # it will not be read again
                    self.release(behind.event)
