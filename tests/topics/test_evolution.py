"""Schema evolution: events written with every earlier schema version are read by the current one."""

from __future__ import annotations

import copy
import io
import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from fastavro import parse_schema, schemaless_writer

from core.errors import is_transient
from tests.topics.fake_registry import fake_registry
from topics.catalog import topic_of
from topics.errors import SerializationError
from topics.events import Event
from topics.evolution import POLICIES, Policy, changed_published_versions, check_store, policy_of, reader_problems
from topics.registry_client import RegistryClient
from topics.samples import sample_record
from topics.schema_store import SCHEMA_DIR, SchemaStore, default_store
from topics.serde import SINGLE_OBJECT_MARKER, ConfluentSerde, SingleObjectSerde


def _encode_with(schema, record) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    buf.write(SINGLE_OBJECT_MARKER + schema.fingerprint)
    schemaless_writer(buf, schema.parsed, record)
    return buf.getvalue()


def test_current_schemas_read_every_published_version() -> None:
    assert [str(p) for p in check_store()] == []


def test_published_versions_are_not_edited_in_place() -> None:
    assert changed_published_versions() == []


def known_alike(a: Any, b: Any) -> bool:
    """Equal in every field both sides know: a nested record may gain a field with a default in a newer version
    (a reader fills it in, an older reader leaves it out)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return all(known_alike(a[k], b[k]) for k in a.keys() & b.keys())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(known_alike(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.mark.parametrize("event_type", default_store().event_types)
def test_events_of_every_earlier_version_decode_with_the_current_reader(event_type: str) -> None:
    store = default_store()
    serde = SingleObjectSerde(store)
    current = store.current(event_type)
    for writer in store.versions(event_type):
        for seed in range(5):
            record = sample_record(writer.raw, seed=seed)
            record["schema_version"] = writer.version
            event = serde.decode(_encode_with(writer, record))
            assert event.type == event_type
            assert set(event.data) == current.field_names
            assert event.schema_version == writer.version
            for name in writer.field_names - {"event_id", "occurred_at"}:
                assert known_alike(event.data[name], record[name]), name
            for field in current.raw["fields"]:
                if field["name"] not in writer.field_names:
                    assert event.data[field["name"]] == field["default"]


def test_a_v1_request_reads_with_v2_defaults() -> None:
    store = default_store()
    v1 = store.get("data_process_requested", 1)
    record = sample_record(v1.raw, seed=3)
    record["schema_version"] = 1
    event = SingleObjectSerde(store).decode(_encode_with(v1, record))
    assert event.data["priority"] == 5 and event.data["deadline_at"] is None


def _job_accepted() -> dict:  # type: ignore[type-arg]
    return copy.deepcopy(default_store().current("job_accepted").raw)


def test_adding_a_field_without_default_is_incompatible() -> None:
    new = _job_accepted()
    new["fields"].append({"name": "priority", "type": "int"})
    assert reader_problems(new, _job_accepted()) == [
        ("priority", "field added without a default: events written before cannot fill it")]


def test_changing_a_field_type_is_incompatible_but_promotion_is_not() -> None:
    old, new = _job_accepted(), _job_accepted()
    next(f for f in new["fields"] if f["name"] == "task")["type"] = "int"
    assert reader_problems(new, old) and reader_problems(new, old)[0][0] == "task"
    old_int, new_long = _job_accepted(), _job_accepted()
    next(f for f in old_int["fields"] if f["name"] == "task")["type"] = "int"
    next(f for f in new_long["fields"] if f["name"] == "task")["type"] = "long"
    assert reader_problems(new_long, old_int) == []


def test_narrowing_a_union_or_removing_an_enum_symbol_is_incompatible() -> None:
    old, new = _job_accepted(), _job_accepted()
    next(f for f in new["fields"] if f["name"] == "session_id")["type"] = "string"
    assert [p for p, _ in reader_problems(new, old)] == ["session_id"]
    old_req = copy.deepcopy(default_store().current("lora_training_requested").raw)
    new_req = copy.deepcopy(old_req)
    method = next(f for f in new_req["fields"] if f["name"] == "method")
    method["type"] = {**method["type"], "symbols": ["LORA"]}
    method["type"].pop("default")
    assert [p for p, _ in reader_problems(new_req, old_req)] == ["method"]


def test_removing_a_field_is_compatible() -> None:
    old, new = _job_accepted(), _job_accepted()
    new["fields"] = [f for f in new["fields"] if f["name"] != "task"]
    assert reader_problems(new, old) == []


# ---- cross-check against Apache Avro's own compatibility checker ---------------------------------
def _avro_reads(reader: dict[str, Any], writer: dict[str, Any]) -> bool:
    """Apache Avro's verdict: can data written with `writer` be read with `reader`?"""
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        avro.schema.parse(json.dumps(reader)), avro.schema.parse(json.dumps(writer)))
    return result.compatibility is SchemaCompatibilityType.compatible


def _ours_reads(reader: dict[str, Any], writer: dict[str, Any]) -> bool:
    return not reader_problems(reader, writer)


@pytest.mark.parametrize("event_type", default_store().event_types)
def test_backward_every_earlier_version_is_readable_by_the_current_per_both_checkers(event_type: str) -> None:
    store = default_store()
    current = store.current(event_type)
    for old in store.versions(event_type):
        assert _ours_reads(current.raw, old.raw), f"{event_type} v{old.version}"
        assert _avro_reads(current.raw, old.raw), f"{event_type} v{old.version} (Apache Avro)"


EVOLVED = [e for e in default_store().event_types if len(default_store().versions(e)) > 1 and policy_of(e).forward]


@pytest.mark.parametrize("event_type", EVOLVED)
def test_forward_the_previous_version_reads_the_current_where_the_policy_says_so(event_type: str) -> None:
    versions = default_store().versions(event_type)
    previous, current = versions[-2], versions[-1]
    assert _ours_reads(previous.raw, current.raw)
    assert _avro_reads(previous.raw, current.raw)


@pytest.mark.parametrize("event_type", EVOLVED)
def test_an_old_consumer_reads_a_new_writers_events_through_the_registry(event_type: str, tmp_path: Path) -> None:
    versions = default_store().versions(event_type)
    previous, current = versions[-2], versions[-1]
    old_catalog = _catalog_before(tmp_path, event_type, current.version)
    event = Event.from_fields(event_type, sample_record(current.raw, seed=1))
    with fake_registry() as registry:
        topic = topic_of(event_type).name
        payload = ConfluentSerde(RegistryClient(registry.url)).encode(event, topic)  # the upgraded producer
        read = ConfluentSerde(RegistryClient(registry.url), old_catalog).decode(payload, topic)  # the old consumer
    assert read.type == event_type and set(read.data) == previous.field_names
    assert all(known_alike(read.data[n], event.data[n]) for n in previous.field_names - {"event_id", "occurred_at"})
    # single-object framing carries no schema: the old consumer dead-letters it, redriven after its upgrade
    with pytest.raises(SerializationError, match="fingerprint"):
        SingleObjectSerde(old_catalog).decode(SingleObjectSerde().encode(event))


def test_an_old_consumer_refuses_a_newer_version_it_cannot_read(tmp_path: Path) -> None:
    v1, v2 = _job_accepted(), _job_accepted()
    v2["fields"] = [f for f in v2["fields"] if f["name"] != "task"]
    with fake_registry() as registry:
        client = RegistryClient(registry.url)
        schema_id = client.register("company_automation_jobs-cda.events.JobAccepted", v2)
        body = io.BytesIO()
        schemaless_writer(body, parse_schema(v2), sample_record(v2, seed=2))
        payload = b"\x00" + struct.pack(">I", schema_id) + body.getvalue()
        with pytest.raises(SerializationError, match="upgrade the consumer") as info:
            ConfluentSerde(client, _write_versions(tmp_path, "job_accepted", v1)).decode(payload, "company_automation_jobs")
    assert not is_transient(info.value)


def _catalog_before(root: Path, event_type: str, version: int) -> SchemaStore:
    """The catalog as a consumer built before `version` of `event_type` sees it."""
    shutil.copytree(SCHEMA_DIR, root / "schemas")
    for newer in (root / "schemas" / event_type).glob("v*.avsc"):
        if int(newer.stem[1:]) >= version:
            newer.unlink()
    return SchemaStore(root / "schemas")


def test_forward_is_the_default_policy_for_every_event_type() -> None:
    assert all(policy_of(e).forward for e in default_store().event_types if e not in POLICIES)


def _write_versions(root: Path, event_type: str, *schemas: dict[str, Any]) -> SchemaStore:
    folder = root / event_type
    folder.mkdir(parents=True)
    for number, schema in enumerate(schemas, start=1):
        (folder / f"v{number}.avsc").write_text(json.dumps(schema))
    return SchemaStore(root)


def test_a_version_old_consumers_cannot_read_fails_forward_unless_the_policy_exempts_it(tmp_path: Path) -> None:
    v1 = _job_accepted()
    v2 = _job_accepted()
    v2["fields"] = [f for f in v2["fields"] if f["name"] != "task"]  # v1 readers need `task`, it has no default
    store = _write_versions(tmp_path, "job_accepted", v1, v2)
    found = check_store(store, policies={})
    assert [(p.writer_version, p.reader_version, p.path) for p in found] == [(2, 1, "task")]
    assert "FORWARD" in str(found[0])
    assert not _avro_reads(v1, v2)
    assert check_store(store, policies={"job_accepted": Policy(forward=False)}) == []


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def _mutated(base: Callable[[], dict[str, Any]], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    schema = base()
    change(schema)
    return schema


def _requested() -> dict[str, Any]:
    return copy.deepcopy(default_store().current("lora_training_requested").raw)


def _set_type(name: str, kind: Any) -> Callable[[dict[str, Any]], None]:
    return lambda s: _field(s, name).update(type=kind)


def _enum_without_lora(s: dict[str, Any], default: str | None) -> None:
    method = _field(s, "method")
    method["type"] = {**method["type"], "symbols": [x for x in method["type"]["symbols"] if x != "LORA"]}
    method["type"].pop("default", None)
    method.pop("default", None)
    if default is not None:
        method["type"]["default"] = default


def _nested_example_field(s: dict[str, Any], field: dict[str, Any]) -> None:
    examples = _field(s, "examples")
    items = examples["type"]["items"] if isinstance(examples["type"], dict) else examples["type"][1]["items"]
    items["fields"].append(field)


# (name, reader, writer, compatible): deliberate changes, each judged the same by both checkers
PAIRS: list[tuple[str, Callable[[], dict[str, Any]], Callable[[], dict[str, Any]], bool]] = [
    ("field added without default", lambda: _mutated(_job_accepted, lambda s: s["fields"].append({"name": "p", "type": "int"})),
     _job_accepted, False),
    ("field added with default", lambda: _mutated(_job_accepted, lambda s: s["fields"].append(
        {"name": "p", "type": "int", "default": 1})), _job_accepted, True),
    ("field removed", lambda: _mutated(_job_accepted, lambda s: s["fields"].pop(6)), _job_accepted, True),
    ("string read as int", lambda: _mutated(_job_accepted, _set_type("task", "int")), _job_accepted, False),
    ("int read as long", lambda: _mutated(_job_accepted, _set_type("task", "long")),
     lambda: _mutated(_job_accepted, _set_type("task", "int")), True),
    ("long read as int", lambda: _mutated(_job_accepted, _set_type("task", "int")),
     lambda: _mutated(_job_accepted, _set_type("task", "long")), False),
    ("float read as double", lambda: _mutated(_job_accepted, _set_type("task", "double")),
     lambda: _mutated(_job_accepted, _set_type("task", "float")), True),
    ("double read as float", lambda: _mutated(_job_accepted, _set_type("task", "float")),
     lambda: _mutated(_job_accepted, _set_type("task", "double")), False),
    ("string read as bytes", lambda: _mutated(_job_accepted, _set_type("task", "bytes")), _job_accepted, True),
    ("union narrowed to its branch", lambda: _mutated(_job_accepted, _set_type("session_id", "string")), _job_accepted, False),
    ("branch widened to a union", _job_accepted, lambda: _mutated(_job_accepted, _set_type("session_id", "string")), True),
    ("array items changed", lambda: _mutated(_job_accepted, _set_type("tools", {"type": "array", "items": "int"})),
     _job_accepted, False),
    ("array read as map", lambda: _mutated(_job_accepted, _set_type("tools", {"type": "map", "values": "string"})),
     _job_accepted, False),
    ("record renamed", lambda: _mutated(_job_accepted, lambda s: s.update(name="JobTaken")), _job_accepted, False),
    ("record renamed with an alias", lambda: _mutated(_job_accepted, lambda s: s.update(
        name="JobTaken", aliases=["cda.events.JobAccepted"])), _job_accepted, True),
    ("enum renamed", lambda: _mutated(_requested, lambda s: _field(s, "method")["type"].update(name="Way")), _requested, False),
    ("enum symbol removed, no default", lambda: _mutated(_requested, lambda s: _enum_without_lora(s, None)), _requested, False),
    ("enum symbol removed, reader default", lambda: _mutated(_requested, lambda s: _enum_without_lora(s, "QLORA")),
     _requested, True),
    ("nested record field added without default", lambda: _mutated(_requested, lambda s: _nested_example_field(
        s, {"name": "weight", "type": "double"})), _requested, False),
    ("nested record field added with default", lambda: _mutated(_requested, lambda s: _nested_example_field(
        s, {"name": "weight", "type": "double", "default": 1.0})), _requested, True),
    ("logical type dropped", lambda: _mutated(_job_accepted, _set_type("occurred_at", "long")), _job_accepted, True),
    ("fixed size changed", lambda: _mutated(_job_accepted, _set_type("task", {"type": "fixed", "name": "F", "size": 4})),
     lambda: _mutated(_job_accepted, _set_type("task", {"type": "fixed", "name": "F", "size": 8})), False),
]


@pytest.mark.parametrize(("name", "reader", "writer", "compatible"), PAIRS, ids=[p[0] for p in PAIRS])
def test_deliberate_changes_are_judged_alike_by_both_checkers(
        name: str, reader: Callable[[], dict[str, Any]], writer: Callable[[], dict[str, Any]], compatible: bool) -> None:
    assert _ours_reads(reader(), writer()) is compatible, reader_problems(reader(), writer())
    assert _avro_reads(reader(), writer()) is compatible


def test_both_checkers_agree_on_every_pair_of_catalog_schemas() -> None:
    store = default_store()
    schemas = [s for e in store.event_types for s in store.versions(e)]
    disagree = [(r.event_type, r.version, w.event_type, w.version) for r in schemas for w in schemas
                if _ours_reads(r.raw, w.raw) != _avro_reads(r.raw, w.raw)]
    assert disagree == []
