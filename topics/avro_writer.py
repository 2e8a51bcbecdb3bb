"""The writer half of the compiled Avro codec (`topics.avro_codec`): a schema becomes one straight-line
`encode(record, header)` that writes exactly the bytes fastavro writes."""

from __future__ import annotations

import struct
from typing import Any

from fastavro.write import LOGICAL_WRITERS

from topics.avro_codec import (
    _SMALL,
    Encoder,
    Unsupported,
    _Compiler,
    _kind,
    _named,
    _null_union,
    _timestamp_millis,
    _uuid_text,
    write_long,
)


class _WriterCompiler(_Compiler):
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


