"""Checks a Python value against an Avro schema, naming the field path and the expected type on failure.

fastavro's own errors do not name the path, and it silently drops unknown fields; this walker does
both, and in JSON mode also turns JSON-friendly values (ISO times, base64 bytes) into Avro datums.
It runs at the edges (CLI, API, `Event.new`), not on the hot encode path.
"""

from __future__ import annotations

import base64
import binascii
import math
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from topics.errors import EventValidationError

Schema = Any  # an Avro schema in its JSON form: str, list (union) or dict
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def describe(schema: Schema) -> str:
    """A short human name of an Avro type, such as `string`, `array<int>` or `null|string`."""
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "|".join(describe(s) for s in schema)
    kind = schema["type"]
    if kind in ("record", "enum", "fixed"):
        return schema["name"] if kind != "enum" else f"enum {schema['name']}{schema['symbols']}"
    if kind == "array":
        return f"array<{describe(schema['items'])}>"
    if kind == "map":
        return f"map<{describe(schema['values'])}>"
    logical = schema.get("logicalType")
    return f"{kind} ({logical})" if logical else describe(kind)


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


class _Walker:
    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode
        self.named: dict[str, dict[str, Any]] = {}

    def fail(self, path: str, schema: Schema, value: Any) -> EventValidationError:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return EventValidationError(path, f"expected {describe(schema)}, got {_type_name(value)} {shown}")

    def walk(self, schema: Schema, value: Any, path: str) -> Any:
        if isinstance(schema, list):
            return self.union(schema, value, path)
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return self.primitive(schema, None, value, path)
            return self.walk(self.named[schema], value, path)
        kind = schema["type"]
        if kind == "record":
            return self.record(schema, value, path)
        if kind == "enum":
            self.named.setdefault(schema["name"], schema)
            if not isinstance(value, str) or value not in schema["symbols"]:
                raise self.fail(path, schema, value)
            return value
        if kind == "array":
            if not isinstance(value, (list, tuple)):
                raise self.fail(path, schema, value)
            return [self.walk(schema["items"], item, f"{path}[{i}]") for i, item in enumerate(value)]
        if kind == "map":
            if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
                raise self.fail(path, schema, value)
            return {k: self.walk(schema["values"], v, f"{path}[{k!r}]") for k, v in value.items()}
        if kind in _PRIMITIVES:
            return self.primitive(kind, schema.get("logicalType"), value, path)
        return self.walk(kind, value, path)

    def record(self, schema: dict[str, Any], value: Any, path: str) -> dict[str, Any]:
        self.named.setdefault(schema["name"], schema)
        if namespace := schema.get("namespace"):
            self.named.setdefault(f"{namespace}.{schema['name']}", schema)
        if not isinstance(value, Mapping):
            raise self.fail(path, schema, value)
        fields = {f["name"]: f for f in schema["fields"]}
        prefix = f"{path}." if path else ""
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise EventValidationError(f"{prefix}{unknown[0]}", f"unknown field; {schema['name']} has: {', '.join(fields)}")
        out: dict[str, Any] = {}
        for name, spec in fields.items():
            if name in value:
                out[name] = self.walk(spec["type"], value[name], f"{prefix}{name}")
            elif "default" in spec:
                out[name] = spec["default"]
            else:
                raise EventValidationError(f"{prefix}{name}", f"missing required field of type {describe(spec['type'])}")
        return out

    def union(self, branches: list[Schema], value: Any, path: str) -> Any:
        for branch in branches:
            try:
                return self.walk(branch, value, path)
            except EventValidationError as exc:
                if exc.path != path:  # the value matched the branch's shape but a nested field is wrong
                    raise
        raise self.fail(path, branches, value)

    def primitive(self, kind: str, logical: str | None, value: Any, path: str) -> Any:
        ok = False
        if kind == "null":
            ok = value is None
        elif kind == "boolean":
            ok = isinstance(value, bool)
        elif kind in ("int", "long"):
            if logical in ("timestamp-millis", "timestamp-micros") and isinstance(value, (datetime, str)):
                return self.timestamp(value, path, kind)
            low, high = _INT32 if kind == "int" else _INT64
            ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        elif kind in ("float", "double"):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        elif kind == "string":
            ok = isinstance(value, (str, uuid.UUID)) if logical == "uuid" else isinstance(value, str)
            if ok and logical == "uuid":
                return self.uuid(value, path)
        elif kind == "bytes":
            if self.json_mode and isinstance(value, str):
                try:
                    return base64.b64decode(value, validate=True)
                except binascii.Error:
                    raise EventValidationError(path, "expected bytes as base64 text") from None
            ok = isinstance(value, (bytes, bytearray))
        if not ok:
            raise self.fail(path, {"type": kind, "logicalType": logical} if logical else kind, value)
        return value

    def timestamp(self, value: datetime | str, path: str, kind: str) -> datetime:
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise EventValidationError(path, f"expected {kind} (timestamp) as ISO-8601 text, got {value!r}") from None
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

    def uuid(self, value: str | uuid.UUID, path: str) -> str:
        try:
            return str(uuid.UUID(str(value)))
        except ValueError:
            raise EventValidationError(path, f"expected string (uuid), got {value!r}") from None


def check(schema: Schema, value: Any) -> dict[str, Any]:
    """Return `value` with defaults filled in, or raise `EventValidationError` naming the field."""
    return _Walker(json_mode=False).walk(schema, value, "")


def from_json(schema: Schema, value: Any) -> dict[str, Any]:
    """Like `check`, for values parsed from JSON: ISO-8601 times and base64 bytes are converted."""
    return _Walker(json_mode=True).walk(schema, value, "")


def to_json_value(value: Any) -> Any:
    """A JSON-ready copy of a decoded datum: times as ISO-8601 UTC, UUIDs as text, bytes as base64."""
    if isinstance(value, Mapping):
        return {k: to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    return value
