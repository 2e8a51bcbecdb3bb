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
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from fastavro.read import LOGICAL_READERS
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


# ---- writers ------------------------------------------------------------------------------------
class _WriterCompiler:
    def __init__(self, schema: Any) -> None:
        self.src = _Source()
        self.names: dict[str, Any] = {}
        self.schema = schema

    def compile(self) -> Encoder:
        self.src.add(1, "out = [head]")
        self.src.add(1, "ap = out.append")
        self.value(self.schema, "record", 1, "")
        self.src.add(1, 'return b"".join(out)')
        return self.src.build("def encode(record, head):", _WRITER_GLOBALS, "encode")  # type: ignore[return-value]

    def length(self, var: str, indent: int) -> None:
        self.src.add(indent, f"ap(_SMALL[{var}] if {var} < 64 else write_long({var}))")

    def value(self, schema: Any, expr: str, indent: int, namespace: str) -> None:
        schema = _named(schema, self.names, namespace)
        add = self.src.add
        if isinstance(schema, list):
            null_at, value_at, branch = _null_union(schema)
            v = self.src.name("u")
            add(indent, f"{v} = {expr}")
            add(indent, f"if {v} is None:")
            add(indent + 1, f"ap({self.src.const(_SMALL[null_at])})")
            add(indent, "else:")
            add(indent + 1, f"ap({self.src.const(_SMALL[value_at])})")
            self.value(branch, v, indent + 1, namespace)
            return
        kind, logical = _kind(schema)
        v = self.src.name("v")
        if logical is not None:
            if (kind, logical) == ("long", "timestamp-millis"):
                add(indent, f"{v} = _timestamp_millis({expr})")
                expr = v
            elif (kind, logical) == ("string", "uuid"):
                add(indent, f"{v} = _uuid_text({expr})")
                expr = v
            elif f"{kind}-{logical}" in LOGICAL_WRITERS:
                raise Unsupported(f"logical type {logical}")
        if kind == "null":
            return
        if kind == "boolean":
            add(indent, f'ap(b"\\x01" if {expr} else b"\\x00")')
        elif kind in ("int", "long"):
            add(indent, f"{v} = {expr}")
            add(indent, f"ap(_SMALL[{v}] if 0 <= {v} < 64 else write_long({v}))")
        elif kind == "float":
            add(indent, f"ap(_pack_float({expr}))")
        elif kind == "double":
            add(indent, f"ap(_pack_double({expr}))")
        elif kind == "string":
            s, n = self.src.name("s"), self.src.name("n")
            add(indent, f"{s} = {expr}.encode()")
            add(indent, f"{n} = len({s})")
            self.length(n, indent)
            add(indent, f"ap({s})")
        elif kind == "bytes":
            b, n = self.src.name("b"), self.src.name("n")
            add(indent, f"{b} = {expr}")
            add(indent, f"{b} = {b} if {b}.__class__ is bytes else bytes({b})")
            add(indent, f"{n} = len({b})")
            self.length(n, indent)
            add(indent, f"ap({b})")
        elif kind == "fixed":
            add(indent, f"{v} = {expr}")
            add(indent, f"if len({v}) != {int(schema['size'])}: raise ValueError('fixed size')")
            add(indent, f"ap(bytes({v}))")
        elif kind == "enum":
            index = self.src.const({s: _SMALL[i] if i < 64 else write_long(i) for i, s in enumerate(schema["symbols"])})
            add(indent, f"ap({index}[{expr}])")
        elif kind in ("array", "map"):
            items, n, x = self.src.name("a"), self.src.name("n"), self.src.name("x")
            add(indent, f"{items} = {expr}")
            add(indent, f"{n} = len({items})")
            add(indent, f"if {n}:")
            self.length(n, indent + 1)
            if kind == "array":
                add(indent + 1, f"for {x} in {items}:")
                self.value(schema["items"], x, indent + 2, namespace)
            else:
                k = self.src.name("k")
                add(indent + 1, f"for {k}, {x} in {items}.items():")
                self.value("string", k, indent + 2, namespace)
                self.value(schema["values"], x, indent + 2, namespace)
            add(indent, 'ap(b"\\x00")')
        elif kind == "record":
            add(indent, f"{v} = {expr}")
            ns = schema.get("namespace", namespace)
            for field in schema["fields"]:
                self.value(field["type"], f"{v}[{field['name']!r}]", indent, ns)
        else:
            raise Unsupported(f"type {kind}")


_WRITER_GLOBALS: dict[str, Any] = {
    "_SMALL": _SMALL,
    "write_long": write_long,
    "_timestamp_millis": _timestamp_millis,
    "_uuid_text": _uuid_text,
    "_pack_float": struct.Struct("<f").pack,
    "_pack_double": struct.Struct("<d").pack,
}


def compile_encoder(schema: Any) -> Encoder:
    """`encode(record, header) -> header + Avro body`, or `Unsupported` for schemas outside the subset."""
    return _WriterCompiler(schema).compile()


# ---- readers ------------------------------------------------------------------------------------
class _ReaderCompiler:
    def __init__(self, schema: Any) -> None:
        self.src = _Source()
        self.names: dict[str, Any] = {}
        self.schema = schema

    def compile(self) -> Decoder:
        self.src.add(1, "size = len(buf)")
        self.value(self.schema, "record", 1, "")
        self.src.add(1, "if pos != size: raise TrailingBytes(size - pos)")
        self.src.add(1, "return record")
        return self.src.build("def decode(buf, pos):", _READER_GLOBALS, "decode")  # type: ignore[return-value]

    def long(self, target: str, indent: int) -> None:
        b = self.src.name("b")
        self.src.add(indent, f"{b} = buf[pos]")
        self.src.add(indent, f"if {b} < 128:")
        self.src.add(indent + 1, f"{target} = _ZIGZAG[{b}]")
        self.src.add(indent + 1, "pos += 1")
        self.src.add(indent, "else:")
        self.src.add(indent + 1, f"{target}, pos = read_long_tail(buf, pos + 1, {b})")

    def sized(self, target: str, indent: int, then: str = "") -> None:
        """`target` = the next length-prefixed slice of the buffer (`then` applied: `.decode()` for strings)."""
        n, end = self.src.name("n"), self.src.name("e")
        self.long(n, indent)
        self.src.add(indent, f"{end} = pos + {n}")
        self.src.add(indent, f"if {n} < 0 or {end} > size: raise ValueError('length out of the record')")
        self.src.add(indent, f"{target} = buf[pos:{end}]{then}")
        self.src.add(indent, f"pos = {end}")

    def value(self, schema: Any, target: str, indent: int, namespace: str) -> None:
        schema = _named(schema, self.names, namespace)
        add = self.src.add
        if isinstance(schema, list):
            null_at, value_at, branch = _null_union(schema)
            i = self.src.name("i")
            self.long(i, indent)
            add(indent, f"if {i} == {null_at}:")
            add(indent + 1, f"{target} = None")
            add(indent, f"elif {i} == {value_at}:")
            self.value(branch, target, indent + 1, namespace)
            add(indent, "else:")
            add(indent + 1, f"raise ValueError('union branch ' + str({i}))")
            return
        kind, logical = _kind(schema)
        if logical is not None and (kind, logical) not in (("long", "timestamp-millis"), ("string", "uuid")):
            if f"{kind}-{logical}" in LOGICAL_READERS:
                raise Unsupported(f"logical type {logical}")
            logical = None  # fastavro ignores logical types it does not know
        if kind == "null":
            add(indent, f"{target} = None")
        elif kind == "boolean":
            add(indent, f"{target} = buf[pos] != 0")
            add(indent, "pos += 1")
        elif kind in ("int", "long"):
            self.long(target, indent)
            if logical == "timestamp-millis":  # fastavro's: epoch + timedelta(microseconds=millis * 1000)
                add(indent, f"{target} = _EPOCH + _timedelta(0, 0, 0, {target})")
        elif kind in ("float", "double"):
            size, unpack = (4, "_unpack_float") if kind == "float" else (8, "_unpack_double")
            add(indent, f"{target} = {unpack}(buf, pos)[0]")
            add(indent, f"pos += {size}")
        elif kind == "string":
            self.sized(target, indent, ".decode()")
            if logical:
                add(indent, f"{target} = _read_uuid({target})")
        elif kind == "bytes":
            self.sized(target, indent)
        elif kind == "fixed":
            size = int(schema["size"])
            add(indent, f"if pos + {size} > size: raise ValueError('fixed out of the record')")
            add(indent, f"{target} = buf[pos:pos + {size}]")
            add(indent, f"pos += {size}")
        elif kind == "enum":
            symbols, i = self.src.const(tuple(schema["symbols"])), self.src.name("i")
            self.long(i, indent)
            add(indent, f"if {i} < 0: raise ValueError('enum index')")
            add(indent, f"{target} = {symbols}[{i}]")
        elif kind in ("array", "map"):
            self.block(schema, kind, target, indent, namespace)
        elif kind == "record":
            ns = schema.get("namespace", namespace)
            names = []
            for field in schema["fields"]:
                local = self.src.name("f")
                self.value(field["type"], local, indent, ns)
                names.append(f"{field['name']!r}: {local}")
            add(indent, f"{target} = {{{', '.join(names)}}}")
        else:
            raise Unsupported(f"type {kind}")

    def block(self, schema: dict[str, Any], kind: str, target: str, indent: int, namespace: str) -> None:
        """Arrays and maps: blocks of items, a negative count followed by the block's size, 0 at the end."""
        add = self.src.add
        items = schema["items"] if kind == "array" else schema["values"]
        if kind == "array" and _may_be_empty(items, self.names):
            raise Unsupported("arrays of zero-byte items")
        n, x, skip = self.src.name("n"), self.src.name("x"), self.src.name("z")
        add(indent, f"{target} = {'[]' if kind == 'array' else '{}'}")
        self.long(n, indent)
        add(indent, f"while {n}:")
        add(indent + 1, f"if {n} < 0:")
        add(indent + 2, f"{n} = -{n}")
        self.long(skip, indent + 2)
        add(indent + 1, f"if {n} > size - pos: raise ValueError('item count out of the record')")
        add(indent + 1, f"for _ in range({n}):")
        if kind == "array":
            self.value(items, x, indent + 2, namespace)
            add(indent + 2, f"{target}.append({x})")
        else:
            k = self.src.name("k")
            self.value("string", k, indent + 2, namespace)
            self.value(items, x, indent + 2, namespace)
            add(indent + 2, f"{target}[{k}] = {x}")
        self.long(n, indent + 1)


def _may_be_empty(schema: Any, names: dict[str, Any]) -> bool:
    """Whether a value of `schema` can take zero bytes (so a count cannot be bounded by the bytes left)."""
    if isinstance(schema, str):
        schema = names.get(schema, schema)
    if isinstance(schema, list):
        return False  # the branch index takes a byte
    if isinstance(schema, str):
        return schema == "null"
    kind = schema["type"]
    if kind == "record":
        return all(_may_be_empty(f["type"], names) for f in schema["fields"])
    if kind == "fixed":
        return int(schema["size"]) == 0
    return kind == "null"


_READER_GLOBALS: dict[str, Any] = {
    "TrailingBytes": TrailingBytes,
    "_ZIGZAG": tuple((b >> 1) ^ -(b & 1) for b in range(128)),  # one-byte varints, decoded
    "read_long_tail": read_long_tail,
    "_EPOCH": _EPOCH,
    "_timedelta": timedelta,
    "_read_uuid": _read_uuid,
    "_unpack_float": struct.Struct("<f").unpack_from,
    "_unpack_double": struct.Struct("<d").unpack_from,
}


def compile_decoder(schema: Any) -> Decoder:
    """`decode(payload, start) -> record` for data written with `schema` and read with it too; the record
    must end the payload (`TrailingBytes` otherwise)."""
    return _ReaderCompiler(schema).compile()
