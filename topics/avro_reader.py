"""The reader half of the compiled Avro codec (`topics.avro_codec`): a schema becomes one straight-line
`decode(payload, start)` that reads what fastavro reads and refuses trailing bytes."""

from __future__ import annotations

import struct
from datetime import timedelta
from typing import Any

from fastavro.read import LOGICAL_READERS

from topics.avro_codec import (
    _EPOCH,
    Decoder,
    TrailingBytes,
    Unsupported,
    _Compiler,
    _kind,
    _named,
    _null_union,
    _read_uuid,
    read_long_tail,
)


class _ReaderCompiler(_Compiler):
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
