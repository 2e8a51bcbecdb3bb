"""The trainer worker and its commands on the real broker, without training a model: what it refuses and how
(bounds, unsafe ids, poison), one worker per request, `cda train` following its own request, examples too
large for one record, and `cda adapters` reading what inference serves (rollback is an event)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

import pytest

from core.settings import Settings
from tests.helpers import eventually, running
from tests.trainer.support import committed, dead_letters_of, inline, outcome, outcomes, read_all, register_demo_tools, request
from topics.connection import topic_name
from topics.consumer import Received
from topics.errors import EventValidationError
from topics.events import Event
from topics.producer import EventProducer
from topics.serde import serde_for
from trainer.registry import LocalAdapterRegistry
from trainer.requests import exclusive
from trainer.sources import request_dataset
from trainer.synthetic import demo_examples
from trainer.worker import TrainerWorker

pytestmark = pytest.mark.kafka
Catalog = Callable[..., Settings]


def unchecked_request(settings: Settings, company: str, request_id: str, examples: list[dict[str, str]]) -> Event:
    """A request whose ids break the contract, as a buggy or hostile producer could write it (no checks)."""
    good = Event.new("lora_training_requested", company, request_id="placeholder", base_model="tiny",
                     source="INLINE", examples=examples)
    return Event("lora_training_requested", MappingProxyType({**good.data, "request_id": request_id}))


def company() -> str:
    return f"acme{uuid.uuid4().hex[:6]}"


def test_poison_is_dead_lettered_and_the_worker_goes_on(trainer_settings: Settings) -> None:
    """A wrong event type and a request whose id is a path each land in dead_letters with the reason; the next
    request is handled and nothing outside the trainer's folders is touched."""
    settings = trainer_settings
    keep = settings.home / "keep.txt"
    keep.parent.mkdir(parents=True)
    keep.write_text("precious")
    topic = topic_name(settings, "lora_training_requests")
    serde = serde_for(registry_url=settings.schema_registry_url)
    wrong_type = Event.new("tool_removed", "acme", tool_name="zx_post")
    unsafe = unchecked_request(settings, "acme", "../../..", inline(40))
    with EventProducer(settings) as producer:
        producer.produce_raw(topic, b"acme", serde.encode(wrong_type, topic))
        producer.produce_raw(topic, b"acme", serde.encode(unsafe, topic))
    good = request(settings, f"notools{uuid.uuid4().hex[:6]}")
    worker = TrainerWorker(settings)
    with running(worker.run, "trainer") as thread:
        final = outcome(settings, good)
        eventually(lambda: len(dead_letters_of(settings, topic)) >= 2, 60, "two dead letters")
        assert thread.alive
    dead = dead_letters_of(settings, topic)
    assert final.type == "training_failed" and final["error_kind"] == "bad_data"
    reasons = sorted(str(r.event["reason"]) for r in dead)
    assert any("tool_removed" in r for r in reasons), reasons
    assert any("request_id" in r and "../../.." in r for r in reasons), reasons
    assert keep.read_text() == "precious"


def test_a_request_id_that_is_a_path_never_leaves_the_work_folder(trainer_settings: Settings) -> None:
    """Defence in depth: even an unchecked request with `../../..` as id reaching the handler is refused before
    any folder is built from it (before: it trained in $CDA_HOME and removed it afterwards)."""
    settings = trainer_settings
    name = company()
    register_demo_tools(settings, name)
    keep = settings.home / "keep.txt"
    keep.parent.mkdir(parents=True)
    keep.write_text("precious")
    before = sorted(p.relative_to(settings.home) for p in settings.home.rglob("*"))
    worker = TrainerWorker(settings)
    event = unchecked_request(settings, name, "../../..", inline(40))
    with pytest.raises(EventValidationError, match="request_id"):
        worker.handle_record(Received(event, "lora_training_requests", 0, 0, 0, name.encode(), None))
    assert keep.read_text() == "precious"
    assert sorted(p.relative_to(settings.home) for p in settings.home.rglob("*")) == before


def test_requests_out_of_bounds_fail_naming_the_field(trainer_settings: Settings) -> None:
    settings = trainer_settings
    name = company()
    asked = {
        "max_steps": request(settings, name, max_steps=10**6),
        "learning_rate": request(settings, name, learning_rate=0.9),
        "max_examples": request(settings, name, max_examples=10**7),
        "rank": request(settings, name, rank=64),
    }
    with running(TrainerWorker(settings).run, "trainer"):
        failed = {field: outcome(settings, rid) for field, rid in asked.items()}
    for field, event in failed.items():
        assert event.type == "training_failed" and event["error_kind"] == "bad_request", event.to_json()
        assert str(event["error"]).startswith(f"{field}: "), event["error"]
    assert "exceeds the server's maximum 16" in failed["rank"]["error"]


def test_a_request_held_by_another_worker_waits_uncommitted(trainer_settings: Settings) -> None:
    """While another worker holds a request's folder (it took it before a rebalance), this worker commits
    nothing and asks again later; once released, the request is handled."""
    settings = trainer_settings
    name = f"notools{uuid.uuid4().hex[:6]}"
    request_id = str(uuid.uuid4())
    worker = TrainerWorker(settings)
    with running(worker.run, "trainer"):
        with exclusive(settings.home / "trainer" / "work" / name / f"{request_id}.lock"):
            with EventProducer(settings) as producer:
                producer.produce(Event.new("lora_training_requested", name, request_id=request_id, base_model="tiny",
                                           source="INLINE"))
            eventually(lambda: worker.busy >= 2, 60, "the worker meeting the held request twice")
            assert outcomes(settings, request_id) == []
            assert committed(settings) == [], "a held request must not be committed"
        assert outcome(settings, request_id)["error_kind"] == "bad_data"  # handled once released


def test_a_request_met_again_after_its_outcome_was_published_gets_no_second_outcome(trainer_settings: Settings) -> None:
    """The outcome was published but the commit after it failed (a broker lost, the group moved on): the request
    comes again, is committed without a second outcome, and the record of its outcome goes with the commit."""
    settings = trainer_settings
    name = f"notools{uuid.uuid4().hex[:6]}"
    request_id = request(settings, name)
    worker = TrainerWorker(settings)
    first = next(r.event for r in read_all(settings, "lora_training_requests") if r.event["request_id"] == request_id)
    published = worker.handle(first)  # as the worker whose commit then failed
    assert published is not None and published.type == "training_failed"
    ended = settings.home / "trainer" / "work" / name / f"{request_id}.ended"
    assert ended.read_text().split() == [published.type, published.event_id]
    assert worker.handle(first) is None  # met again: nothing published
    with running(worker.run, "trainer"):  # the group reads the request, still uncommitted
        eventually(lambda: not ended.exists(), 60, "the request committed and its record released")
    assert [e.event_id for e in outcomes(settings, request_id)] == [published.event_id]


def test_train_follows_its_own_request_from_before_it_was_produced(trainer_settings: Settings, cli: Callable[..., object],
                                                                   tmp_path: Path) -> None:
    """A trainer that fails a request within milliseconds: `cda train` still sees the outcome (before: it
    subscribed with `latest` after producing and waited out its timeout)."""
    settings = trainer_settings
    examples = tmp_path / "few.jsonl"
    examples.write_text("".join(json.dumps({"task": e.task, "data": json.loads(e.payload_json), "tool": e.tool_name,
                                            "arguments": e.arguments}) + "\n" for e in demo_examples(5)))
    worker = TrainerWorker(settings)
    with running(worker.run, "trainer"):
        warm = request(settings, f"notools{uuid.uuid4().hex[:6]}")
        outcome(settings, warm)  # the worker has joined and answers fast
        result = cli("train", "--company", f"notools{uuid.uuid4().hex[:6]}", "--examples", str(examples), "--timeout", "60")
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    assert "training_failed" in result.output and "no outcome" not in result.output, result.output  # type: ignore[attr-defined]


def test_examples_over_the_record_limit_travel_by_reference(trainer_settings: Settings, cli: Callable[..., object],
                                                            tmp_path: Path) -> None:
    """More than 1 MB of examples (the broker's default record limit): stored by content, referenced by the
    request, and read back whole by the worker (before: the produce failed, message too large)."""
    settings = trainer_settings
    name = company()
    register_demo_tools(settings, name)
    rows = [{"task": e.task, "data": {**json.loads(e.payload_json), "note": f"{i:06d}" + "x" * 600}, "tool": e.tool_name,
             "arguments": e.arguments} for i, e in enumerate(demo_examples(2000, seed=5))]
    big = tmp_path / "big.jsonl"
    big.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert big.stat().st_size > 1_000_000
    result = cli("train", "--company", name, "--examples", str(big), "--no-follow")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    [sent] = [r.event for r in read_all(settings, "lora_training_requests") if r.event.company_id == name]
    assert sent["examples"] == [] and sent["examples_ref"]
    dataset = request_dataset(settings, sent, max_examples=10_000)
    assert len(dataset.train) + len(dataset.eval) == len(rows) and not dataset.rejected
    from trainer.examples_store import release_examples

    assert release_examples(settings, name, str(sent["examples_ref"]), str(sent["request_id"]))  # held by the request


def _stored(settings: Settings, company_id: str, content: bytes, request_id: str) -> str:
    folder = settings.home / "scratch" / request_id
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text('{"r": 8}')
    (folder / "adapter_model.safetensors").write_bytes(content)
    return LocalAdapterRegistry(settings.home / "adapters").publish(company_id, folder, {
        "base_model": "tiny", "rank": 8, "dataset_hash": "d", "request_id": request_id,
        "metrics": {"exact_match": 0.5}}).version


def test_adapters_shows_what_inference_serves_and_rollback_is_an_event(trainer_settings: Settings,
                                                                        cli: Callable[..., object]) -> None:
    settings = trainer_settings
    name = company()
    first, second = _stored(settings, name, b"one", "r1"), _stored(settings, name, b"two", "r2")
    root = settings.home / "adapters" / name
    with EventProducer(settings) as producer:
        producer.produce(Event.new("adapter_activated", name, version=second, served_name=f"{name}@lora",
                                   uri=f"file://{root / second}", base_model="tiny", rank=8, request_id="r2",
                                   previous_version=first))
        producer.produce(Event.new("adapter_refused", name, version="3333", uri=f"file://{root / '3333'}",
                                   reason="rank 64 exceeds the server's maximum 16", error_kind="rank_too_large"))
    shown = cli("adapters", "--company", name)
    assert shown.exit_code == 0, shown.output  # type: ignore[attr-defined]
    assert f"active: {second}" in shown.output  # type: ignore[attr-defined]
    assert "refused: 3333" in shown.output and "rank 64 exceeds" in shown.output  # type: ignore[attr-defined]
    assert not list(root.glob("ACTIVE*"))

    assert cli("adapters", "--company", name, "--rollback").exit_code == 0  # type: ignore[attr-defined]
    assert cli("adapters", "--company", name, "--activate", second).exit_code == 0  # type: ignore[attr-defined]
    ready = [r.event for r in read_all(settings, "lora_adapter_ready") if r.event.company_id == name]
    assert [(e["version"], e["uri"], e["request_id"]) for e in ready] == [
        (first, f"file://{root / first}", "r1"), (second, f"file://{root / second}", "r2")]
    refused = cli("adapters", "--company", name, "--activate", "../../etc")
    assert refused.exit_code == 1 and "may not be used in a path" in refused.output  # type: ignore[attr-defined]


def test_the_gate_refuses_an_adapter_below_the_floor_even_when_it_beats_the_base(trainer_settings: Settings) -> None:
    """The issue's case: an adapter at 0.395 beat the base's 0.0 and was published. Below the absolute floor
    (CDA_TRAINER_MIN_EXACT_MATCH) it is refused, `training_rejected` says why, and `--force` still serves it."""
    settings = trainer_settings.model_copy(update={"trainer_min_exact_match": 0.8})
    name, low, forced = company(), str(uuid.uuid4()), str(uuid.uuid4())
    for request_id in (low, forced):  # stored already (a redelivery): the worker decides without training
        folder = settings.home / "scratch" / request_id
        folder.mkdir(parents=True)
        (folder / "adapter_model.safetensors").write_bytes(request_id.encode())
        LocalAdapterRegistry(settings.home / "adapters").publish(name, folder, {
            "base_model": "tiny", "rank": 8, "dataset_hash": "d", "request_id": request_id,
            "metrics": {"exact_match": 0.395, "baseline_exact_match": 0.0}})
    with EventProducer(settings) as producer:
        for request_id, force in ((low, False), (forced, True)):
            producer.produce(Event.new("lora_training_requested", name, request_id=request_id, source="INLINE",
                                       base_model=settings.base_model_path, examples=[], force=force))
    with running(TrainerWorker(settings).run, "trainer"):
        refused, served = outcome(settings, low), outcome(settings, forced)
    assert refused.type == "training_rejected", refused.to_json()
    assert refused["reason"].startswith("below_floor: exact match 0.395 is under the floor 0.800"), refused["reason"]
    assert refused["floor"] == 0.8 and dict(refused["candidate_metrics"])["exact_match"] == 0.395
    assert served.type == "lora_adapter_ready", served.to_json()


class RecordingWorker(TrainerWorker):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.order: list[str] = []

    def handle(self, request: Event) -> Event | None:
        self.order.append(request.company_id)
        return super().handle(request)


def test_the_queue_is_fair_across_companies_and_commits_every_request_once_ended(trainer_settings: Settings) -> None:
    """Five requests of one company produced straight to the topic, then one of another: the other's is not
    trained fifth, each request is handled once, and every offset is committed at the end."""
    settings = trainer_settings
    flood, small = f"notools{uuid.uuid4().hex[:6]}", f"notools{uuid.uuid4().hex[:6]}"
    ids = [request(settings, flood) for _ in range(5)] + [request(settings, small)]
    worker = RecordingWorker(settings)
    with running(worker.run, "trainer"):
        for request_id in ids:
            assert outcome(settings, request_id)["error_kind"] == "bad_data"  # no tools: fails fast
        eventually(lambda: sum(committed(settings)) == len(ids), 30, "every request committed")
    assert sorted(worker.order) == sorted([flood] * 5 + [small])  # each once
    assert worker.order.index(small) <= 2, worker.order  # its turn came behind at most two of the flood's
