"""Serialization: single-object encoding, Confluent framing, and clear errors for bad bytes and bad fields."""

from __future__ import annotations

import json
import struct
from datetime import datetime, timezone

import httpx
import pytest

from topics.errors import EventValidationError, SerializationError
from topics.events import Event
from topics.registry_client import RegistryClient
from topics.serde import ConfluentSerde, SingleObjectSerde, serde_for


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


class FakeRegistry:
    """The two registry endpoints the serde uses, over httpx's mock transport (a unit-test boundary)."""

    def __init__(self) -> None:
        self.schemas: list[str] = []
        self.subjects: dict[str, int] = {}

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            schema = json.loads(request.content)["schema"]
            if schema not in self.schemas:
                self.schemas.append(schema)
            subject = request.url.path.split("/")[2]
            self.subjects[subject] = self.schemas.index(schema) + 1
            return httpx.Response(200, json={"id": self.schemas.index(schema) + 1})
        schema_id = int(request.url.path.rsplit("/", 1)[1])
        if schema_id > len(self.schemas):
            return httpx.Response(404, json={"error_code": 40403, "message": "Schema not found"})
        return httpx.Response(200, json={"schema": self.schemas[schema_id - 1]})


def test_confluent_framing_round_trip_through_a_registry() -> None:
    fake = FakeRegistry()
    client = RegistryClient("http://registry:8081", transport=httpx.MockTransport(fake.handle))
    writer = ConfluentSerde(client)
    payload = writer.encode(_job(), "company_automation_jobs")
    assert payload[0] == 0 and struct.unpack(">I", payload[1:5]) == (1,)
    assert fake.subjects == {"company_automation_jobs-cda.events.JobAccepted": 1}
    reader = ConfluentSerde(client)  # a fresh process: learns the schema from the registry by id
    event = reader.decode(payload, "company_automation_jobs")
    assert event.type == "job_accepted" and event.data["job_id"] == "j1"
    with pytest.raises(SerializationError, match="404"):
        reader.decode(b"\x00" + struct.pack(">I", 99) + payload[5:], "company_automation_jobs")
    with pytest.raises(SerializationError, match="magic"):
        reader.decode(b"\xc3\x01" + payload, "company_automation_jobs")


def test_serde_choice_follows_the_registry_setting() -> None:
    assert isinstance(serde_for(), SingleObjectSerde)
    assert isinstance(serde_for(registry_url="http://registry:8081"), ConfluentSerde)
