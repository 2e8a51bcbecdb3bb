"""Serialization: single-object encoding, Confluent framing, and clear errors for bad bytes and bad fields."""

from __future__ import annotations

import io
import random
import struct
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from core.errors import is_transient
from core.settings import Settings
from tests.helpers import eventually
from tests.topics.fake_registry import fake_registry
from topics.avro_codec import TrailingBytes, Unsupported
from topics.avro_reader import compile_decoder
from topics.avro_writer import compile_encoder
from topics.consumer import EventConsumer
from topics.dead_letters import Rejected
from topics.errors import EventValidationError, RegistryUnavailable, SerializationError
from topics.events import Event
from topics.producer import EventProducer
from topics.registry_client import RegistryClient
from topics.samples import sample_record
from topics.schema_store import default_store
from topics.serde import ConfluentSerde, SingleObjectSerde, serde_for, serde_from


def _job() -> Event:
    return Event.new("job_accepted", "acme", job_id="j1", request_id="r1", task="invoice", tools=["a", "b"])


def test_single_object_encoding_layout_and_round_trip() -> None:
    serde = SingleObjectSerde()
    event = _job()
    payload = serde.encode(event)
    assert payload[:2] == b"\xc3\x01"
    assert payload[2:10] == serde.store.current("job_accepted").fingerprint
    back = serde.decode(payload)
    assert back.type == "job_accepted"
    assert back.event_id == event.event_id
    assert back.data["tools"] == ["a", "b"]
    assert back.occurred_at == event.occurred_at.replace(microsecond=event.occurred_at.microsecond // 1000 * 1000)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"", "marker"),
        (b"{\"job_id\": 1}", "marker"),
        (b"\xc3\x01" + b"\x00" * 8 + b"abc", "fingerprint"),
    ],
)
def test_bytes_that_are_no_event_are_refused(payload: bytes, match: str) -> None:
    with pytest.raises(SerializationError, match=match):
        SingleObjectSerde().decode(payload)


def test_truncated_and_padded_bodies_are_refused() -> None:
    payload = SingleObjectSerde().encode(_job())
    with pytest.raises(SerializationError, match="corrupt"):
        SingleObjectSerde().decode(payload[:20])
    with pytest.raises(SerializationError, match="trailing"):
        SingleObjectSerde().decode(payload + b"\x00\x00")


@pytest.mark.parametrize(
    ("fields", "path", "expected"),
    [
        ({"job_id": 7}, "job_id", "expected string, got int"),
        ({"tools": ["a", 3]}, "tools[1]", "expected string, got int"),
        ({"tools": "a"}, "tools", "expected array<string>"),
        ({"adapter_version": 1.5}, "adapter_version", "expected null|string, got float"),
        ({"jobid": "x"}, "jobid", "unknown field"),
    ],
)
def test_invalid_fields_are_named_with_the_expected_type(fields: dict, path: str, expected: str) -> None:  # type: ignore[type-arg]
    base = {"job_id": "j1", "request_id": "r1", "task": "t"} | fields
    with pytest.raises(EventValidationError) as info:
        Event.new("job_accepted", "acme", **base)
    assert info.value.path == path
    assert expected in info.value.message


def test_missing_required_field_is_named() -> None:
    with pytest.raises(EventValidationError) as info:
        Event.new("job_accepted", "acme", job_id="j1", task="t")
    assert info.value.path == "request_id" and "missing required field of type string" in info.value.message


def test_nested_record_fields_are_named() -> None:
    with pytest.raises(EventValidationError) as info:
        Event.new("lora_training_requested", "acme", request_id="r", base_model="m", source="INLINE",
                  examples=[{"task": "t", "payload_json": "{}", "tool_name": "x", "arguments_json": 5}])
    assert info.value.path == "examples[0].arguments_json"


def test_json_mode_reads_iso_times_and_base64() -> None:
    event = Event.from_fields("dead_letter", {
        "company_id": "acme", "occurred_at": "2026-11-24T10:00:00Z", "source_topic": "t", "source_partition": 0,
        "source_offset": 5, "payload": "AAEC", "reason": "r", "error_type": "E"}, json_mode=True)
    assert event.occurred_at == datetime(2026, 11, 24, 10, tzinfo=timezone.utc)
    assert event.data["payload"] == b"\x00\x01\x02"
    assert event.to_json()["payload"] == "AAEC"
    assert event.to_json()["occurred_at"] == "2026-11-24T10:00:00Z"



# ---- the compiled codecs write and read exactly what fastavro does ------------------------------
def _every_schema() -> list[Any]:
    store = default_store()
    return [s for e in store.event_types for s in store.versions(e)]


@pytest.mark.parametrize("schema", _every_schema(), ids=lambda s: f"{s.event_type}-v{s.version}")
def test_compiled_codecs_agree_with_fastavro_byte_for_byte(schema: Any) -> None:
    encode, decode, parsed = compile_encoder(schema.raw), compile_decoder(schema.raw), parse_schema(schema.raw)
    for seed in range(30):
        record = sample_record(schema.raw, seed=seed)
        buf = io.BytesIO()
        schemaless_writer(buf, parsed, record)
        assert encode(record, b"HEAD") == b"HEAD" + buf.getvalue()
        expected = schemaless_reader(io.BytesIO(buf.getvalue()), parsed, None)
        got = decode(b"HEAD" + buf.getvalue(), 4)
        assert list(got.items()) == list(expected.items())


@pytest.mark.parametrize("schema", _every_schema(), ids=lambda s: f"{s.event_type}-v{s.version}")
def test_the_compiled_decoder_reads_damaged_bytes_as_fastavro_does(schema: Any) -> None:
    """Flipped, cut and inserted bytes: the same record, or an error, from both (stricter only on a
    negative union index, which fastavro reads as Python's list[-1])."""
    rng = random.Random(schema.fingerprint)
    decode, parsed = compile_decoder(schema.raw), parse_schema(schema.raw)
    for seed in range(5):
        good = compile_encoder(schema.raw)(sample_record(schema.raw, seed=seed), b"")
        for _ in range(40):
            damaged = bytearray(good)
            at = rng.randrange(len(damaged))
            kind = rng.choice(("flip", "cut", "insert"))
            if kind == "flip":
                damaged[at] = rng.randrange(256)
            elif kind == "cut":
                del damaged[at:]
            else:
                damaged.insert(at, rng.randrange(256))
            data = bytes(damaged)
            try:
                ours: Any = decode(data, 0)
            except (ValueError, IndexError, OverflowError, UnicodeDecodeError, struct.error) as exc:
                ours = exc
            try:
                buf = io.BytesIO(data)
                theirs: Any = schemaless_reader(buf, parsed, None)
                if buf.tell() != len(data):
                    theirs = TrailingBytes(len(data) - buf.tell())
            except Exception as exc:  # fastavro raises EOFError, ValueError, IndexError...
                theirs = exc
            if isinstance(ours, Exception) and not isinstance(theirs, Exception):
                assert "union branch -" in str(ours), (kind, at, ours)
            else:
                assert isinstance(theirs, Exception) == isinstance(ours, Exception), (kind, at, ours, theirs)
                assert isinstance(ours, Exception) or ours == theirs


def test_compiled_codecs_cover_long_varints_blocks_and_negative_numbers() -> None:
    schema = {"type": "record", "name": "R", "fields": [
        {"name": "n", "type": "long"}, {"name": "i", "type": ["int", "null"]}, {"name": "f", "type": "float"},
        {"name": "b", "type": "boolean"}, {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
        {"name": "x", "type": {"type": "fixed", "name": "X", "size": 2}}, {"name": "m", "type": {"type": "map", "values": "E"}},
        {"name": "a", "type": {"type": "array", "items": "bytes"}}]}
    parsed = parse_schema(schema)
    for n in (0, 63, 64, -1, -65, 2**31, -(2**63), 2**63 - 1):
        record = {"n": n, "i": None if n % 2 else -n % 2**31, "f": 1.5, "b": n > 0, "e": "B", "x": b"ab",
                  "m": {"k": "A", "l": "B"}, "a": [b"", b"\x00" * 200]}
        buf = io.BytesIO()
        schemaless_writer(buf, parsed, record)
        assert compile_encoder(schema)(record, b"") == buf.getvalue()
        assert compile_decoder(schema)(buf.getvalue(), 0) == schemaless_reader(io.BytesIO(buf.getvalue()), parsed, None)
    with pytest.raises(OverflowError):
        compile_encoder(schema)({**record, "n": 2**63}, b"")
    # blocks with a negative count carry their byte size (other writers use them): read them too
    blocked = (b"\x00" + b"\x00\x00" + b"\x00" * 4 + b"\x00" + b"\x02" + b"ab"
               + b"\x01\x06" + b"\x02k\x02" + b"\x00"  # map: one entry in a sized block
               + b"\x01\x02" + b"\x00" + b"\x00")  # array: one empty bytes item in a sized block
    expected = schemaless_reader(io.BytesIO(blocked), parsed, None)
    assert expected["m"] == {"k": "B"} and expected["a"] == [b""]
    assert compile_decoder(schema)(blocked, 0) == expected
    with pytest.raises(TrailingBytes):
        compile_decoder(schema)(blocked + b"\x00", 0)


def test_schemas_outside_the_compiled_subset_are_refused_at_compile_time() -> None:
    wide_union = {"type": "record", "name": "R", "fields": [{"name": "u", "type": ["null", "int", "string"]}]}
    recursive = {"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"]}]}
    decimal = {"type": "record", "name": "D", "fields": [
        {"name": "d", "type": {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 2}}]}
    for schema in (wide_union, recursive, decimal):
        with pytest.raises(Unsupported):
            compile_encoder(schema)
        with pytest.raises(Unsupported):
            compile_decoder(schema)


def test_decoded_events_are_immutable_with_aware_times() -> None:
    serde = SingleObjectSerde()
    back = serde.decode(serde.encode(_job()))
    assert isinstance(back.data, MappingProxyType)
    with pytest.raises(TypeError):
        back.data["job_id"] = "other"  # type: ignore[index]
    assert back.occurred_at.tzinfo is not None and back.occurred_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert str(back.data["event_id"]) == back.event_id


def test_values_the_fast_path_refuses_are_decided_by_fastavro_and_named() -> None:
    serde = SingleObjectSerde()
    naive = _job()
    odd = Event("job_accepted", MappingProxyType({**naive.data, "occurred_at": 1_700_000_000_123}))  # millis as int
    assert serde.decode(serde.encode(odd)).occurred_at == datetime.fromtimestamp(1_700_000_000.123, tz=timezone.utc)
    partial = Event("job_accepted", MappingProxyType({k: v for k, v in naive.data.items() if k != "tools"}))
    assert serde.decode(serde.encode(partial)).data["tools"] == []  # fastavro fills a missing field's default
    wrong = Event("job_accepted", MappingProxyType({**naive.data, "step": 1, "job_id": 7}))
    with pytest.raises(EventValidationError) as info:
        serde.encode(wrong)
    assert info.value.path in ("job_id", "step")


def test_a_corrupt_count_is_refused_not_allocated() -> None:
    serde = SingleObjectSerde()
    payload = serde.encode(_job())
    schema = default_store().current("job_accepted")
    header = b"\xc3\x01" + schema.fingerprint
    body = compile_encoder(schema.raw)({**_job().data, "tools": []}, b"")
    at = body.index(b"\x00", len(body) - 3)  # the empty tools array (before the two null unions)
    huge = header + body[:at] + b"\xfe\xff\xff\xff\x0f" + body[at:]
    with pytest.raises(SerializationError, match="corrupt"):
        serde.decode(huge)
    assert serde.decode(payload).data["tools"] == ["a", "b"]


# ---- Confluent framing against a registry over HTTP on loopback -----------------------------------
def test_confluent_framing_round_trip_through_a_registry() -> None:
    with fake_registry() as fake:
        writer = ConfluentSerde(RegistryClient(fake.url))
        payload = writer.encode(_job(), "company_automation_jobs")
        assert payload[0] == 0 and struct.unpack(">I", payload[1:5]) == (1,)
        assert fake.subjects == {"company_automation_jobs-cda.events.JobAccepted": 1}
        assert writer.encode(_job(), "company_automation_jobs")[:5] == payload[:5]
        reader = ConfluentSerde(RegistryClient(fake.url))  # a fresh process: learns the schema from the registry by id
        event = reader.decode(payload, "company_automation_jobs")
        assert event.type == "job_accepted" and event.data["job_id"] == "j1"
        asked = fake.requests
        assert reader.decode(payload, "company_automation_jobs").event_id == event.event_id
        assert fake.requests == asked  # ids are cached: the registry is asked once per id
        with pytest.raises(SerializationError, match="unknown to the schema registry") as info:
            reader.decode(b"\x00" + struct.pack(">I", 99) + payload[5:], "company_automation_jobs")
        assert not is_transient(info.value)  # the record is at fault: dead-letter it
        with pytest.raises(SerializationError, match="magic"):
            reader.decode(b"\xc3\x01" + payload, "company_automation_jobs")


def test_a_registry_schema_outside_the_catalog_is_a_serialization_error() -> None:
    with fake_registry() as fake:
        client = RegistryClient(fake.url)
        foreign = {"type": "record", "name": "Foreign", "fields": [{"name": "x", "type": "int"}]}
        schema_id = client.register("company_automation_jobs-Foreign", foreign)
        with pytest.raises(SerializationError, match="not a schema of the cda catalog"):
            ConfluentSerde(client).decode(b"\x00" + struct.pack(">I", schema_id) + b"\x02", "company_automation_jobs")


@pytest.mark.parametrize("outage", ["stopped", "error", "hang"])
def test_a_registry_outage_is_transient_not_poison(outage: str) -> None:
    with fake_registry() as fake:
        payload = ConfluentSerde(RegistryClient(fake.url)).encode(_job(), "company_automation_jobs")
        reader = ConfluentSerde(RegistryClient(fake.url, timeout_s=1.0))
        port = fake.port
        if outage == "stopped":
            fake.stop()
        else:
            fake.mode = outage
        with pytest.raises(RegistryUnavailable, match=fake.url) as info:
            reader.decode(payload, "company_automation_jobs")
        assert is_transient(info.value)  # a consumer retries it and dead-letters nothing
        with pytest.raises(RegistryUnavailable):
            ConfluentSerde(RegistryClient(fake.url, timeout_s=1.0)).encode(_job(), "company_tools")
        fake.mode = "ok"  # the registry comes back: the same record decodes
        fake.release.set()
        if outage == "stopped":
            fake.start(port)
        assert reader.decode(payload, "company_automation_jobs").data["job_id"] == "j1"


def test_serde_choice_follows_the_registry_setting() -> None:
    from topics.sealing import SealingSerde

    assert isinstance(serde_for(), SingleObjectSerde)
    sealing = serde_from(Settings())
    assert isinstance(sealing, SealingSerde) and isinstance(sealing.inner, SingleObjectSerde)  # CDA_DATA_SEALING
    assert isinstance(serde_from(Settings(data_sealing=False)), SingleObjectSerde)
    serde = serde_from(Settings(schema_registry_url="http://127.0.0.1:1", schema_registry_timeout_s=0.5,
                                data_sealing=False))
    assert isinstance(serde, ConfluentSerde)
    with pytest.raises(RegistryUnavailable, match="127.0.0.1:1"):  # nothing listens there: refused at once
        serde.encode(_job(), "company_automation_jobs")


@pytest.mark.kafka
def test_a_consumer_meeting_a_registry_outage_dead_letters_nothing_and_reads_the_record_after(catalog: Any) -> None:
    settings = catalog("company_automation_jobs")
    rejected: list[Rejected] = []

    class Sink:
        def send(self, item: Rejected) -> None:
            rejected.append(item)

        def flush(self) -> None:
            pass

    def consumer() -> EventConsumer:
        serde = ConfluentSerde(RegistryClient(fake.url, timeout_s=1.0))  # a fresh process: nothing cached
        reader = EventConsumer(settings, "registry-outage", serde=serde, dead_letters=Sink())
        reader.subscribe(["company_automation_jobs"])
        return reader

    with fake_registry() as fake:
        framed = settings.model_copy(update={"schema_registry_url": fake.url})
        with EventProducer(framed) as producer:
            producer.produce(_job())
        port = fake.port
        fake.stop()
        with consumer() as reader, pytest.raises(RegistryUnavailable):  # once the record arrives
            eventually(lambda: reader.poll(1.0) != [], what="the record's arrival")
        assert rejected == []  # not poison: nothing dead-lettered, nothing committed
        fake.start(port)
        with consumer() as reader:  # re-joined: the group starts again at the same record
            got: list[Any] = []
            eventually(lambda: bool(got.extend(reader.poll(1.0)) or got), what="the record after the outage")
        assert [r.event.data["job_id"] for r in got] == ["j1"] and rejected == []
