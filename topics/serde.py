"""Self-describing Avro serialization of events.

Default: Avro single-object encoding — 0xC3 0x01, the writer schema's 8-byte CRC-64-AVRO fingerprint,
then the body — resolved against the schema catalog in this repository. With a schema registry URL
configured: Confluent framing — 0x00, a 4-byte schema id, then the body.
Either way a reader finds the writer's schema from the bytes alone and reads it with the current one.
"""

from __future__ import annotations

import io
import struct
from types import MappingProxyType
from typing import Protocol

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from topics import datum
from topics.errors import EventValidationError, SchemaNotFound, SerializationError
from topics.events import Event
from topics.registry_client import RegistryClient
from topics.schema_store import EventSchema, SchemaStore, default_store, fingerprint_of

SINGLE_OBJECT_MARKER = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"


class Serde(Protocol):
    """Turns events into record values and back; `topic` is the physical topic name."""

    def encode(self, event: Event, topic: str) -> bytes: ...

    def decode(self, payload: bytes, topic: str) -> Event: ...


def _write_body(buf: io.BytesIO, schema: EventSchema, event: Event) -> None:
    try:
        schemaless_writer(buf, schema.parsed, event.data)
    except Exception as exc:  # fastavro raises many types; name the field with our own walker
        try:
            datum.check(schema.raw, dict(event.data))
        except EventValidationError as named:
            raise named from exc
        raise SerializationError(f"cannot encode {event.type}: {exc}") from exc


def _read_body(buf: io.BytesIO, writer: EventSchema, reader: EventSchema, size: int) -> Event:
    try:
        record = schemaless_reader(buf, writer.parsed, None if writer is reader else reader.parsed)
    except Exception as exc:
        raise SerializationError(f"corrupt {writer.event_type} v{writer.version} body: {exc}") from exc
    if buf.tell() != size:
        raise SerializationError(f"{size - buf.tell()} trailing bytes after a {writer.event_type} record")
    return Event(writer.event_type, MappingProxyType(record))


class SingleObjectSerde:
    """Avro single-object encoding against the repository's schema catalog."""

    def __init__(self, store: SchemaStore | None = None) -> None:
        self.store = store or default_store()

    def encode(self, event: Event, topic: str = "") -> bytes:
        schema = self.store.current(event.type)
        buf = io.BytesIO()
        buf.write(SINGLE_OBJECT_MARKER)
        buf.write(schema.fingerprint)
        _write_body(buf, schema, event)
        return buf.getvalue()

    def decode(self, payload: bytes, topic: str = "") -> Event:
        if len(payload) < 10 or payload[:2] != SINGLE_OBJECT_MARKER:
            raise SerializationError("not an Avro single-object encoded event (missing the 0xC3 0x01 marker)")
        try:
            writer = self.store.by_fingerprint(payload[2:10])
        except SchemaNotFound as exc:
            raise SerializationError(str(exc)) from exc
        buf = io.BytesIO(payload)
        buf.seek(10)
        return _read_body(buf, writer, self.store.current(writer.event_type), len(payload))


class ConfluentSerde:
    """Confluent wire format (magic 0, schema id) with schemas registered under `<topic>-<record name>`."""

    def __init__(self, registry: RegistryClient, store: SchemaStore | None = None) -> None:
        self.registry = registry
        self.store = store or default_store()
        self._ids: dict[tuple[str, bytes], int] = {}
        self._schemas: dict[int, EventSchema] = {}

    def encode(self, event: Event, topic: str) -> bytes:
        schema = self.store.current(event.type)
        cache_key = (topic, schema.fingerprint)
        schema_id = self._ids.get(cache_key)
        if schema_id is None:
            schema_id = self.registry.register(f"{topic}-{schema.full_name}", schema.raw)
            self._ids[cache_key] = schema_id
            self._schemas[schema_id] = schema
        buf = io.BytesIO()
        buf.write(CONFLUENT_MAGIC + struct.pack(">I", schema_id))
        _write_body(buf, schema, event)
        return buf.getvalue()

    def decode(self, payload: bytes, topic: str) -> Event:
        if len(payload) < 5 or payload[:1] != CONFLUENT_MAGIC:
            raise SerializationError("not a Confluent-framed Avro record (missing magic byte 0)")
        (schema_id,) = struct.unpack(">I", payload[1:5])
        writer = self._schemas.get(schema_id)
        if writer is None:
            writer = self._writer_for(schema_id)
            self._schemas[schema_id] = writer
        buf = io.BytesIO(payload)
        buf.seek(5)
        return _read_body(buf, writer, self.store.current(writer.event_type), len(payload))

    def _writer_for(self, schema_id: int) -> EventSchema:
        raw = self.registry.schema(schema_id)
        fp = fingerprint_of(parse_schema(raw, _write_hint=False))
        try:
            return self.store.by_fingerprint(fp)
        except SchemaNotFound as exc:
            raise SerializationError(f"schema id {schema_id} is not a schema of the cda catalog") from exc


def serde_for(store: SchemaStore | None = None, registry_url: str | None = None) -> Serde:
    """Single-object encoding, or Confluent framing when a registry URL is configured."""
    if registry_url:
        return ConfluentSerde(RegistryClient(registry_url), store)
    return SingleObjectSerde(store)
