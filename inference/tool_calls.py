"""Model output as a tool call: JSON that must validate against the tool's JSON schema.

Structured outputs make valid JSON the normal case; output cut off by the token limit (or a schema the
grammar could not fully enforce) is caught here and returned as invalid with the raw text, never executed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from core.json_schemas import check_local_refs
from core.json_schemas import check_schema as check_json_schema
from core.json_schemas import errors as schema_errors


@dataclass(frozen=True)
class ToolCallOutcome:
    valid: bool
    arguments: dict[str, Any] | None
    error: str | None


def check_schema(schema: dict[str, Any]) -> None:
    """Raise `jsonschema.SchemaError` when `schema` is not a valid JSON Schema, `RemoteReference` when it refers
    to another document (never fetched)."""
    check_json_schema(schema)
    check_local_refs(schema, "json_schema")


def parse_tool_call(text: str, schema: dict[str, Any], finish_reason: str = "stop") -> ToolCallOutcome:
    try:
        arguments = json.loads(text)
    except json.JSONDecodeError as exc:
        cut = " (cut off by the token limit)" if finish_reason == "length" else ""
        return ToolCallOutcome(False, None, f"output is not JSON{cut}: {exc.msg} at {exc.pos}")
    found = schema_errors(schema, arguments)
    if found:
        first = found[0]
        where = "/".join(str(p) for p in first.path) or "<root>"
        return ToolCallOutcome(False, None, f"output fails the tool schema at {where}: {first.message}")
    if not isinstance(arguments, dict):
        return ToolCallOutcome(False, None, "output is not a JSON object")
    return ToolCallOutcome(True, arguments, None)
