"""Avro binary codecs compiled once per schema into straight-line Python, for the event hot path.

fastavro interprets the schema on every record (a dictionary walk per field: ~0.6 us per field, ~2.5 us
per call), which made encoding cost more than producing. The catalog uses a small subset of Avro
(primitives, records, enums, arrays, maps, `null|X` unions, the `uuid` and `timestamp-millis` logical
types), so each schema is compiled once into a function that writes or reads its fields in order.

The compiled functions are exact: they write the bytes fastavro writes and read what it reads (the
tests compare both on every schema version). They are only a fast path: a schema outside the subset
raises `Unsupported` at compile time, and the serde then uses fastavro for it; a value the encoder
does not take raises and the serde retries with fastavro, which decides. Reading with a *different*
(newer) reader schema — schema resolution — is always left to fastavro.

This module holds what both halves share (varints, logical values, the source builder, schema walking);
`topics.avro_writer` compiles encoders and `topics.avro_reader` decoders.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from fastavro.write import LOGICAL_WRITERS

Encoder = Callable[[Mapping[str, Any], bytes], bytes]  # (record, header) -> header + body
Decoder = Callable[[bytes, int], dict[str, Any]]  # (payload, start) -> the record, which ends the payload

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_LONG_RANGE = (-(2**63), 2**63 - 1)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_SMALL = tuple(bytes([n << 1]) for n in range(64))  # zig-zag varints of 0..63: one byte each


class Unsupported(Exception):
    """The schema uses a part of Avro the compiler does not cover; use fastavro for it."""


class TrailingBytes(ValueError):
    """The record ended before the payload did."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} trailing bytes after the record")
        self.count = count


def write_long(n: int) -> bytes:
    """The zig-zag varint of a long (values of 0..63 are looked up inline, not here)."""
    if not _LONG_RANGE[0] <= n <= _LONG_RANGE[1]:
        raise OverflowError(f"{n} does not fit an Avro long")
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_long_tail(buf: bytes, pos: int, first: int) -> tuple[int, int]:
    """Finish a varint whose first byte `first` had its continuation bit set; (value, next position)."""
    n = first & 0x7F
    shift = 7
    b = buf[pos]
    while b > 0x7F:
        n |= (b & 0x7F) << shift
        shift += 7
        pos += 1
        b = buf[pos]
    if shift > 63:
        raise ValueError("varint longer than 10 bytes")
    return ((n | b << shift) >> 1) ^ -(b << shift & 1 | n & 1), pos + 1


def _timestamp_millis(value: Any) -> int:
    if value.__class__ is datetime and value.tzinfo is not None:
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    return LOGICAL_WRITERS["long-timestamp-millis"](value, None)  # ints, naive times: fastavro's rules


def _uuid_text(value: Any) -> str:
    if value.__class__ is str:
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"expected a uuid, got {type(value).__name__}")


def _read_uuid(text: str) -> uuid.UUID:
    """`uuid.UUID(text)` (what fastavro returns), without re-parsing the canonical 36-character form."""
    digits = text.replace("-", "")
    if len(digits) == 32 and len(text) == 36:
        value = _new_uuid(uuid.UUID)
        _set(value, "int", int(digits, 16))
        _set(value, "is_safe", uuid.SafeUUID.unknown)
        return value
    return uuid.UUID(text)


_new_uuid = object.__new__
_set = object.__setattr__


class _Source:
    """Lines of one generated function, its constants, and fresh local names."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {}
        self._count = 0

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}{self._count}"

    def const(self, value: Any) -> str:
        name = f"_c{len(self.consts)}"
        self.consts[name] = value
        return name

    def add(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def build(self, header: str, globals_: dict[str, Any], fn: str) -> Callable[..., Any]:
        namespace: dict[str, Any] = {**globals_, **self.consts}
        exec("\n".join([header, *self.lines]), namespace)  # noqa: S102 - source generated from a schema
        return namespace[fn]  # type: ignore[no-any-return]


class _Compiler:
    """What the encoder's and the decoder's compilers share: the schema, its named types met so far, the source."""

    def __init__(self, schema: Any) -> None:
        self.src = _Source()
        self.names: dict[str, Any] = {}
        self.schema = schema


def _named(schema: Any, names: dict[str, Any], namespace: str = "") -> Any:
    """Resolve a reference to a named type (inlined, so recursive types are unsupported); register definitions."""
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return schema
        found = names.get(schema) or names.get(f"{namespace}.{schema}")
        if found is None:
            raise Unsupported(f"unknown named type {schema!r}")
        if found.get("type") == "record":
            raise Unsupported(f"record referenced by name ({schema}): may be recursive")
        return found
    if isinstance(schema, dict) and schema.get("type") in ("record", "enum", "fixed"):
        ns = schema.get("namespace", namespace)
        full = schema["name"] if "." in schema["name"] else f"{ns}.{schema['name']}".lstrip(".")
        if full in names or schema["name"] in names:
            raise Unsupported(f"named type {full} defined twice or recursive")
        names[full] = names[schema["name"]] = schema
    return schema


def _kind(schema: Any) -> tuple[str, str | None]:
    """(Avro type, logical type) of a non-union schema."""
    if isinstance(schema, str):
        return schema, None
    kind = schema["type"]
    if not isinstance(kind, str):
        raise Unsupported("nested type declarations")
    return kind, schema.get("logicalType")


def _null_union(schema: list[Any]) -> tuple[int, int, Any]:
    if len(schema) != 2 or schema.count("null") != 1:
        raise Unsupported("unions other than null|X")
    null_at = schema.index("null")
    return null_at, 1 - null_at, schema[1 - null_at]
