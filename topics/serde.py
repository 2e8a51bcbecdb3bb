"""Self-describing Avro serialization of events.

Default: Avro single-object encoding — 0xC3 0x01, the writer schema's 8-byte CRC-64-AVRO fingerprint,
then the body — resolved against the schema catalog in this repository. With a schema registry URL
configured: Confluent framing — 0x00, a 4-byte schema id, then the body.
Either way a reader finds the writer's schema from the bytes alone and reads it with the current one.

Speed (BENCH P1): everything that depends only on the schema is done once per schema, not per record —
the header bytes, a compiled encoder, and per writer schema a compiled decoder (writer == current
reader, the common case: no resolution) or fastavro with pre-parsed schemas (an older writer: Avro
schema resolution fills the new fields' defaults). Values are not validated again on encode:
`Event.new`/`Event.from_fields` did that; a value the fast path refuses is retried with fastavro and,
if that fails too, named by `datum.check`.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from core.settings import Settings
from topics import datum
from topics.avro_codec import Encoder, TrailingBytes, Unsupported
from topics.avro_reader import compile_decoder
from topics.avro_writer import compile_encoder
from topics.errors import EventValidationError, SchemaNotFound, SerializationError
from topics.events import Event
from topics.evolution import reader_problems
from topics.registry_client import RegistryClient
from topics.schema_store import EventSchema, SchemaStore, default_store, fingerprint_of

SINGLE_OBJECT_MARKER = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"

BodyReader = Callable[[bytes, int], dict[str, Any]]  # (payload, body start) -> record; raises TrailingBytes


class Serde(Protocol):
    """Turns events into record values and back; `topic` is the physical topic name."""

    def encode(self, event: Event, topic: str) -> bytes: ...

    def decode(self, payload: bytes, topic: str) -> Event: ...


@dataclass(frozen=True)
class _Writer:
    """How to write one event type: its current schema, the header before the body, the body encoder."""

    schema: EventSchema
    header: bytes
    encode: Encoder


class _Reader(NamedTuple):
    """How to read bodies written with one schema: its event type, the body reader, a name for errors."""

    event_type: str
    read: BodyReader
    label: str


class _Codecs:
    """Per-schema compiled codecs, built on first use and shared by the serdes of a process."""

    def __init__(self) -> None:
        self._encoders: dict[bytes, Encoder] = {}
        self._readers: dict[tuple[bytes, bytes], BodyReader] = {}
        self._hinted: dict[bytes, dict[str, Any]] = {}

    def hinted(self, schema: EventSchema) -> dict[str, Any]:
        """The schema parsed once for fastavro with its "already parsed" mark, so it is not re-parsed per call."""
        parsed = self._hinted.get(schema.fingerprint)
        if parsed is None:
            parsed = self._hinted[schema.fingerprint] = parse_schema(schema.raw)
        return parsed

    def encoder(self, schema: EventSchema) -> Encoder:
        found = self._encoders.get(schema.fingerprint)
        if found is None:
            try:
                found = compile_encoder(schema.raw)
            except Unsupported:
                found = self._fastavro_encoder(schema)
            self._encoders[schema.fingerprint] = found
        return found

    def reader(self, writer: EventSchema, reader: EventSchema) -> BodyReader:
        key = (writer.fingerprint, reader.fingerprint)
        found = self._readers.get(key)
        if found is None:
            if writer.fingerprint == reader.fingerprint:
                try:
                    found = compile_decoder(writer.raw)
                except Unsupported:
                    found = self._fastavro_reader(writer, None)
            else:
                found = self._fastavro_reader(writer, reader)
            self._readers[key] = found
        return found

    def _fastavro_encoder(self, schema: EventSchema) -> Encoder:
        parsed = self.hinted(schema)

        def encode(record: Mapping[str, Any], header: bytes) -> bytes:
            buf = io.BytesIO()
            buf.write(header)
            schemaless_writer(buf, parsed, record)
            return buf.getvalue()

        return encode

    def _fastavro_reader(self, writer: EventSchema, reader: EventSchema | None) -> BodyReader:
        writer_parsed = self.hinted(writer)
        reader_parsed = self.hinted(reader) if reader is not None else None

        def read(payload: bytes, start: int) -> dict[str, Any]:
            buf = io.BytesIO(payload)
            buf.seek(start)
            record = schemaless_reader(buf, writer_parsed, reader_parsed)
            if buf.tell() != len(payload):
                raise TrailingBytes(len(payload) - buf.tell())
            return record  # type: ignore[return-value]

        return read


_CODECS = _Codecs()


def _encode(codecs: _Codecs, schema: EventSchema, header: bytes, event: Event,
            fast: Encoder) -> bytes:
    try:
        return fast(event.data, header)
    except Exception:  # the fast path refused a value: fastavro decides, then our walker names the field
        pass
    buf = io.BytesIO()
    buf.write(header)
    try:
        schemaless_writer(buf, codecs.hinted(schema), event.data)
    except Exception as exc:  # fastavro raises many types; name the field with our own walker
        try:
            datum.check(schema.raw, dict(event.data))
        except EventValidationError as named:
            raise named from exc
        raise SerializationError(f"cannot encode {event.type}: {exc}") from exc
    return buf.getvalue()


def _decode_error(reader: _Reader, exc: Exception) -> SerializationError:
    if isinstance(exc, TrailingBytes):
        return SerializationError(f"{exc.count} trailing bytes after a {reader.label} record")
    return SerializationError(f"corrupt {reader.label} body: {exc!r}")


class SingleObjectSerde:
    """Avro single-object encoding against the repository's schema catalog."""

    def __init__(self, store: SchemaStore | None = None) -> None:
        self.store = store or default_store()
        self._codecs = _CODECS
        self._writers: dict[str, _Writer] = {}
        self._readers: dict[bytes, _Reader] = {}

    def encode(self, event: Event, topic: str = "") -> bytes:
        writer = self._writers.get(event.type)
        if writer is None:
            schema = self.store.current(event.type)
            writer = self._writers[event.type] = _Writer(
                schema, SINGLE_OBJECT_MARKER + schema.fingerprint, self._codecs.encoder(schema))
        return _encode(self._codecs, writer.schema, writer.header, event, writer.encode)

    def decode(self, payload: bytes, topic: str = "") -> Event:
        reader = self._readers.get(payload[:10])  # marker and fingerprint: one look-up per record
        if reader is None:
            reader = self._reader_for(payload)
        try:
            return Event(reader.event_type, MappingProxyType(reader.read(payload, 10)))
        except Exception as exc:  # kept off the hot path: only failures pay for the naming
            raise _decode_error(reader, exc) from exc

    def _reader_for(self, payload: bytes) -> _Reader:
        if len(payload) < 10 or payload[:2] != SINGLE_OBJECT_MARKER:
            raise SerializationError("not an Avro single-object encoded event (missing the 0xC3 0x01 marker)")
        try:
            writer = self.store.by_fingerprint(payload[2:10])
        except SchemaNotFound as exc:
            raise SerializationError(str(exc)) from exc
        current = self.store.current(writer.event_type)
        reader = _Reader(writer.event_type, self._codecs.reader(writer, current), f"{writer.event_type} v{writer.version}")
        self._readers[payload[:10]] = reader
        return reader


class ConfluentSerde:
    """Confluent wire format (magic 0, schema id) with schemas registered under `<topic>-<record name>`.

    Ids are cached per process both ways, so the registry is asked once per (topic, schema) on write and
    once per id on read. A registry that does not answer raises `RegistryUnavailable` (transient: the
    record is retried, never dead-lettered); an id the registry does not know, or whose schema is not
    in the catalog, raises `SerializationError` (the record itself is at fault).
    """

    def __init__(self, registry: RegistryClient, store: SchemaStore | None = None) -> None:
        self.registry = registry
        self.store = store or default_store()
        self._codecs = _CODECS
        self._writers: dict[tuple[str, str], _Writer] = {}
        self._readers: dict[int, _Reader] = {}

    def encode(self, event: Event, topic: str) -> bytes:
        writer = self._writers.get((topic, event.type))
        if writer is None:
            schema = self.store.current(event.type)
            schema_id = self.registry.register(f"{topic}-{schema.full_name}", schema.raw)
            writer = self._writers[(topic, event.type)] = _Writer(
                schema, CONFLUENT_MAGIC + struct.pack(">I", schema_id), self._codecs.encoder(schema))
        return _encode(self._codecs, writer.schema, writer.header, event, writer.encode)

    def decode(self, payload: bytes, topic: str) -> Event:
        if len(payload) < 5 or payload[:1] != CONFLUENT_MAGIC:
            raise SerializationError("not a Confluent-framed Avro record (missing magic byte 0)")
        (schema_id,) = struct.unpack_from(">I", payload, 1)
        reader = self._readers.get(schema_id)
        if reader is None:
            writer = self._writer_for(schema_id)
            current = self.store.current(writer.event_type)
            version = f"v{writer.version}" if writer.version else "(newer version)"
            reader = _Reader(writer.event_type, self._codecs.reader(writer, current),
                             f"{writer.event_type} {version} (schema id {schema_id})")
            self._readers[schema_id] = reader
        try:
            return Event(reader.event_type, MappingProxyType(reader.read(payload, 5)))
        except Exception as exc:
            raise _decode_error(reader, exc) from exc

    def _writer_for(self, schema_id: int) -> EventSchema:
        """The writer schema behind `schema_id`: one of the catalog's, or a newer version of one of its event
        types (written by an upgraded producer during a rolling upgrade) that the current schema can read."""
        raw = self.registry.schema(schema_id)
        try:
            parsed = parse_schema(raw, _write_hint=False)
            fp = fingerprint_of(parsed)
        except Exception as exc:
            raise SerializationError(f"schema id {schema_id} is no valid Avro schema: {exc}") from exc
        try:
            return self.store.by_fingerprint(fp)
        except SchemaNotFound:
            pass
        full_name = f"{raw.get('namespace', '')}.{raw.get('name', '')}".lstrip(".") if isinstance(raw, dict) else ""
        event_type = self.store.event_type_named(full_name)
        if event_type is None:
            raise SerializationError(f"schema id {schema_id} ({full_name or 'unnamed'}) is not a schema of the cda catalog")
        current = self.store.current(event_type)
        problems = reader_problems(current.raw, raw)
        if problems:
            path, reason = problems[0]
            raise SerializationError(
                f"schema id {schema_id} is a {event_type} version this consumer's v{current.version} cannot read "
                f"({path or '<root>'}: {reason}); upgrade the consumer, then redrive the dead letter")
        return EventSchema(event_type, 0, raw, parsed, fp)  # version 0: not (yet) in this catalog


def serde_for(store: SchemaStore | None = None, registry_url: str | None = None,
              registry_timeout_s: float = 5.0) -> Serde:
    """Single-object encoding, or Confluent framing when a registry URL is configured."""
    if registry_url:
        return ConfluentSerde(RegistryClient(registry_url, timeout_s=registry_timeout_s), store)
    return SingleObjectSerde(store)


def serde_from(settings: Settings, store: SchemaStore | None = None) -> Serde:
    """The serde the settings ask for (`CDA_SCHEMA_REGISTRY_URL`, `CDA_SCHEMA_REGISTRY_TIMEOUT_S`), sealing each
    company's content with its data key unless `CDA_DATA_SEALING` is off (`topics.sealing`)."""
    inner = serde_for(store, settings.schema_registry_url, settings.schema_registry_timeout_s)
    if not settings.data_sealing:
        return inner
    from topics.sealing import SealingSerde, ring_for  # sealing builds plain serdes of its own

    return SealingSerde(inner, ring_for(settings))
