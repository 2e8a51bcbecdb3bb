"""Schema evolution: events written with every earlier schema version are read by the current one."""

from __future__ import annotations

import copy
import io

import pytest
from fastavro import schemaless_writer

from topics.evolution import changed_published_versions, check_store, reader_problems
from topics.samples import sample_record
from topics.schema_store import default_store
from topics.serde import SINGLE_OBJECT_MARKER, SingleObjectSerde


def _encode_with(schema, record) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    buf.write(SINGLE_OBJECT_MARKER + schema.fingerprint)
    schemaless_writer(buf, schema.parsed, record)
    return buf.getvalue()


def test_current_schemas_read_every_published_version() -> None:
    assert [str(p) for p in check_store()] == []


def test_published_versions_are_not_edited_in_place() -> None:
    assert changed_published_versions() == []


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
                assert event.data[name] == record[name], name
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
