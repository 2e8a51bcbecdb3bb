"""The contract beyond Avro types: identifiers, JSON fields, URLs and ranges — refused when an event is built,
dead-lettered when one is read — and paths built from event data that cannot leave their root."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from core.paths import UnsafePath, safe_join
from core.settings import Settings, settings_env
from topics.catalog import topic
from topics.connection import topic_name
from topics.consumer import EventConsumer, Received
from topics.errors import EventValidationError, InvalidIdentifier
from topics.events import Event
from topics.positions import Position
from topics.producer import EventProducer
from topics.serde import SingleObjectSerde

Catalog = Callable[..., Settings]
GOOD_TOOL = {"tool_name": "create_invoice", "description": "d", "parameters_schema_json": '{"type":"object"}',
             "method": "POST", "url": "http://127.0.0.1:9/invoices", "headers": {}, "timeout_ms": 5000}


@pytest.mark.parametrize("bad", ["../../etc", "..", "a/b", "", " acme", "acme\n", "-x", "a" * 129, "ac..me", "é"])
def test_identifiers_are_refused_when_an_event_is_built(bad: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        Event.new("tool_registered", bad, **GOOD_TOOL)
    assert caught.value.path == "company_id"
    with pytest.raises(InvalidIdentifier) as caught:
        Event.new("lora_training_requested", "acme", request_id=bad, base_model="/m", source="INLINE", examples=[])
    assert caught.value.path == "request_id"


@pytest.mark.parametrize(("field", "value", "says"), [
    ("parameters_schema_json", "not json", "expected JSON"),
    ("parameters_schema_json", '{"type": 12}', "not a valid JSON Schema"),
    ("parameters_schema_json", "[1, 2]", "JSON Schema object"),
    ("url", "file:///etc/passwd", "http(s) URL"),
    ("url", "http://", "http(s) URL"),
    ("timeout_ms", -5, "from 1 to"),
    ("method", "TRACE", "expected one of"),
    ("headers", {"X-A": "b\r\nInjected: 1"}, "line breaks"),
    ("secret_ref", "hunter2", "secret reference"),
    ("tool_name", "../x", "not an identifier"),
])
def test_tool_registered_fields_are_checked_by_meaning(field: str, value: object, says: str) -> None:
    with pytest.raises(EventValidationError) as caught:
        Event.new("tool_registered", "acme", **{**GOOD_TOOL, field: value})
    assert caught.value.path.startswith(field) and says in caught.value.message


def test_other_event_types_are_checked_too() -> None:
    with pytest.raises(EventValidationError, match="payload_json"):
        Event.new("data_process_requested", "acme", request_id="r1", job_id="j1", task="t", payload_json="{", tools=[])
    with pytest.raises(EventValidationError, match="tools"):
        Event.new("data_process_requested", "acme", request_id="r1", job_id="j1", task="t", payload_json="{}",
                  tools=["ok", "../bad"])
    with pytest.raises(EventValidationError, match="uri"):
        Event.new("lora_adapter_ready", "acme", request_id="r1", adapter_name="acme@lora", version="v1",
                  uri="http://elsewhere/adapter", base_model="/m", rank=8, dataset_hash="h", metrics={})
    with pytest.raises(EventValidationError, match="learning_rate"):
        Event.new("lora_training_requested", "acme", request_id="r1", base_model="/m", source="INLINE", examples=[],
                  learning_rate=5.0)
    assert Event.new("tool_registered", "acme", **GOOD_TOOL).company_id == "acme"


def test_paths_from_event_data_stay_under_their_root(tmp_path: Path) -> None:
    root = tmp_path / "adapters"
    assert safe_join(root, "acme", "v1") == (root / "acme" / "v1").resolve()
    for parts in (("..",), ("acme", "../.."), ("/etc",), ("acme/../../x",), ("",)):
        with pytest.raises(UnsafePath):
            safe_join(root, *parts)
    (tmp_path / "outside").mkdir()
    root.mkdir()
    (root / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(UnsafePath, match="outside"):
        safe_join(root, "link")


@pytest.mark.kafka
def test_cda_produce_refuses_what_a_new_user_tried(catalog: Catalog, tmp_path: Path) -> None:
    settings = catalog("company_tools")
    bad = {"type": "tool_registered", **GOOD_TOOL, "company_id": "../../etc", "parameters_schema_json": "not json", "url": "file:///etc/passwd",
           "timeout_ms": -5}
    lines = tmp_path / "tools.jsonl"
    lines.write_text(json.dumps(bad) + "\n")
    env = {**settings_env(settings, base={"PATH": "/usr/bin:/bin"}), "COLUMNS": "300"}
    done = subprocess.run([sys.executable, "-m", "cda.cli.main", "produce", "company_tools", "-f", str(lines)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    assert "line 1: tool_registered.company_id" in done.stderr and "Traceback" not in done.stderr
    with EventConsumer(settings, f"check-{uuid.uuid4()}") as consumer:
        assert consumer.assign("company_tools", Position.beginning(), until_end=True) == 0  # nothing produced


def _raw_event(event_type: str, company: str, **fields: object) -> bytes:
    """An encoded event that skips the build-side checks, as an old or foreign producer could write it."""
    from types import MappingProxyType

    from topics import datum
    from topics.schema_store import default_store

    schema = default_store().current(event_type)
    record = datum.check(schema.raw, {"event_id": str(uuid.uuid4()), "company_id": company,
                                      "occurred_at": 1_700_000_000_000, "schema_version": schema.version, **fields})
    return SingleObjectSerde().encode(Event(event_type, MappingProxyType(record)))


def read_dead_letters(settings: Settings) -> list[Received]:
    with EventConsumer(settings, f"dl-{uuid.uuid4()}") as consumer:
        consumer.assign("dead_letters", Position.beginning(), until_end=True)
        return list(consumer)


@pytest.mark.kafka
def test_a_consumer_dead_letters_events_that_break_the_rules_and_goes_on(catalog: Catalog) -> None:
    settings = catalog("company_tools", "dead_letters")
    name = topic_name(settings, "company_tools")
    poison = _raw_event("tool_registered", "../../etc", **{**GOOD_TOOL, "url": "file:///etc/passwd"})
    wrong_type = SingleObjectSerde().encode(Event.new("job_accepted", "acme", job_id="j1", request_id="r1", task="t"))
    good = Event.new("tool_registered", "acme", **GOOD_TOOL)
    with EventProducer(settings) as producer:
        producer.produce_raw(name, b"../../etc/create_invoice", poison)
        producer.produce_raw(name, b"acme/j1", wrong_type)
        producer.produce(good)
    group = f"tools-{uuid.uuid4()}"
    with EventConsumer(settings, group) as consumer:
        consumer.assign("company_tools", Position.beginning(), until_end=True)
        got = list(consumer)
        consumer.commit()
    assert [r.event.event_id for r in got] == [good.event_id]
    letters = sorted((r.event for r in read_dead_letters(settings)), key=lambda e: e["source_offset"])
    assert len(letters) == 2
    assert letters[0].company_id == "unknown" and "company_id" in letters[0]["reason"]
    assert letters[1].company_id == "acme" and "does not belong on topic company_tools" in letters[1]["reason"]
    assert {e["consumer_group"] for e in letters} == {group}
    assert topic("company_tools").partitions >= 1
