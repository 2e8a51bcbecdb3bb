"""Poison records of every kind on every consumed topic: each lands in `dead_letters` with its reason, the
next good record is processed, an oversize record keeps a bounded excerpt, and `redrive` drives any of
them again, byte for byte, to where it came from."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer

from core.settings import Settings
from tests.topics.test_contract_checks import _raw_event
from topics.catalog import CATALOG
from topics.connection import client_config, topic_name
from topics.consumer import EventConsumer, Received
from topics.dead_letters import EXCERPT_BYTES
from topics.events import Event
from topics.positions import Position
from topics.producer import EventProducer
from topics.redrive import DeadLetterFilter, redrive
from topics.replay import batches_in, range_bounds
from topics.samples import sample_record
from topics.schema_store import default_store
from topics.serde import SingleObjectSerde

pytestmark = pytest.mark.kafka
Catalog = Callable[..., Settings]
CONSUMED = [spec for spec in CATALOG if spec.name != "dead_letters"]
OVERSIZE = 900_000  # under the broker's 1 MB record limit, far over what a dead letter may copy


def poison_records(spec_name: str) -> list[tuple[str, bytes]]:
    """(kind, value) of every poison kind for a topic."""
    serde = SingleObjectSerde()
    foreign = next(s for s in CATALOG if s.name not in (spec_name, "dead_letters")).event_types[0]
    wrong_type = serde.encode(Event.from_fields(foreign, sample_record(default_store().current(foreign).raw, seed=1)))
    own = next(s for s in CATALOG if s.name == spec_name).event_types[0]
    fields = {k: v for k, v in sample_record(default_store().current(own).raw, seed=2).items()
              if k not in ("event_id", "company_id", "occurred_at", "schema_version")}
    rule_breaking = _raw_event(own, "../../etc", **fields)
    return [
        ("not_an_event", b"this is no event"),
        ("unknown_fingerprint", b"\xc3\x01" + b"\x00" * 8 + b"\x02"),
        ("wrong_type", wrong_type if spec_name != "company_tools" else serde.encode(Event.new(
            "job_accepted", "acme", job_id="j1", request_id="r1", task="t"))),
        ("rule_breaking", rule_breaking),
        ("oversize", b"\xc3\x01" + b"\x07" * OVERSIZE),
    ]


def read(settings: Settings, name: str, group: str | None = None) -> list[Received]:
    with EventConsumer(settings, group or f"r-{uuid.uuid4()}") as consumer:
        consumer.assign(name, Position.beginning(), until_end=True)
        got = list(consumer)
        consumer.commit()
    return got


def raw_values(settings: Settings, name: str) -> list[bytes]:
    consumer = Consumer(client_config(settings, **{"group.id": f"raw-{uuid.uuid4()}", "enable.auto.commit": False}))
    try:
        bounds = range_bounds(settings, consumer, name, Position.beginning())
        return [m.value() for batch in batches_in(consumer, bounds, 10) for m in batch]
    finally:
        consumer.close()


def test_every_poison_kind_on_every_topic_is_dead_lettered_and_the_next_record_flows(catalog: Catalog) -> None:
    # unsealed: a sealed event would add its company's first data key to company_data_keys, read here too
    settings = catalog().model_copy(update={"data_sealing": False})
    good: dict[str, Event] = {}
    with EventProducer(settings) as producer:
        for spec in CONSUMED:
            for _, value in poison_records(spec.name):
                producer.produce_raw(topic_name(settings, spec.name), b"acme/x", value)
            event_type = spec.event_types[0]
            good[spec.name] = Event.from_fields(event_type, sample_record(default_store().current(event_type).raw, 7))
            producer.produce(good[spec.name])
    for spec in CONSUMED:
        got = read(settings, spec.name, group=f"worker-{spec.name}")
        assert [r.event.event_id for r in got] == [good[spec.name].event_id], spec.name
    letters = [r.event for r in read(settings, "dead_letters")]
    assert len(letters) == 5 * len(CONSUMED)
    for spec in CONSUMED:
        mine = sorted((e for e in letters if e["source_topic"] == topic_name(settings, spec.name)),
                      key=lambda e: e["source_offset"])
        reasons = [e["reason"] for e in mine]
        assert "marker" in reasons[0] and "fingerprint" in reasons[1], (spec.name, reasons)
        assert "does not belong on topic" in reasons[2] and "company_id" in reasons[3], (spec.name, reasons)
        oversize = mine[4]
        assert oversize["payload_truncated"] is True and oversize["payload_size"] == OVERSIZE + 2
        assert len(oversize["payload"]) == EXCERPT_BYTES
        assert all(e["consumer_group"] == f"worker-{spec.name}" for e in mine)
        assert all(e.company_id == "acme" for e in mine)


def test_redrive_produces_the_whole_records_again_to_their_source(catalog: Catalog,
                                                                  cli_for: Callable[..., Callable[..., Any]]) -> None:
    settings = catalog("company_memory", "dead_letters")
    source = topic_name(settings, "company_memory")
    originals = [value for _, value in poison_records("company_memory")]
    with EventProducer(settings) as producer:
        for value in originals:
            producer.produce_raw(source, b"acme/e1", value)
    assert read(settings, "company_memory", group="memory-worker") == []
    assert len(read(settings, "dead_letters")) == 5

    listed = cli_for(settings)("dead-letters", "list", "--topic", "company_memory")
    assert listed.exit_code == 0, listed.output
    assert "memory-worker" in listed.output and "(excerpt)" in listed.output
    assert "5 dead letter(s)" in listed.output

    only_oversize = redrive(settings, Position.beginning(), DeadLetterFilter(source_topic="company_memory",
                                                                            error_type="SerializationError"))
    assert only_oversize == 4  # everything but the rule-breaking event, which is an EventValidationError
    values = raw_values(settings, "company_memory")
    assert values[:5] == originals
    assert sorted(values[5:], key=len) == sorted([v for v in originals if v != originals[3]], key=len)
    assert redrive(settings, Position.beginning(), DeadLetterFilter(source_topic="company_data")) == 0


def get_app():  # noqa: ANN201 - the typer app, imported late so the settings cache is cleared first
    from cda.cli.main import app

    return app
