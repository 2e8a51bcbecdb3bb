"""The prompt contract: how a task, the company's data and its tools become a prompt, and what the model
must answer — a compact JSON tool call. The trainer, the evaluation and the agents all import it from here,
so an adapter is trained on exactly what it is later asked, and serving code never imports training code."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

CALL_MARKER = "Call:"


@dataclass(frozen=True)
class ToolSpec:
    """A company tool as the model sees it: name, description and the JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]

    def signature(self) -> str:
        props = self.parameters.get("properties", {})
        args = ", ".join(f"{k}:{v.get('type', 'any')}" for k, v in props.items())
        return f"{self.name}({args}) - {self.description}"


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def render_prompt(task: str, payload_json: str, tools: list[ToolSpec]) -> str:
    """The prompt: the company's tools, the task and its data, then the call marker and the space after it."""
    listed = "\n".join(f"- {t.signature()}" for t in sorted(tools, key=lambda t: t.name))
    try:
        data = compact(json.loads(payload_json))
    except json.JSONDecodeError:
        data = payload_json
    return f"Tools:\n{listed}\nTask: {task}\nData: {data}\n{CALL_MARKER} "


def render_target(tool_name: str, arguments: dict[str, Any]) -> str:
    """The answer: `{"tool":...,"arguments":{...}}` with sorted keys and no whitespace, not even a leading space:
    exactly what guided decoding emits (its grammar allows no whitespace), so training and serving see the
    same tokens from the first one on."""
    return json.dumps({"tool": tool_name, "arguments": json.loads(compact(arguments))}, separators=(",", ":"))


def call_schema(tools: list[ToolSpec]) -> dict[str, Any]:
    """JSON schema of a call to any of `tools`: guided decoding can only produce a call that fits one."""
    return {"anyOf": [
        {"type": "object", "properties": {"tool": {"const": t.name}, "arguments": _sorted_schema(t.parameters)},
         "required": ["tool", "arguments"], "additionalProperties": False}
        for t in sorted(tools, key=lambda t: t.name)
    ]}


def _sorted_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Properties in sorted order, so guided output matches `render_target`'s key order."""
    props = schema.get("properties")
    if not isinstance(props, dict):
        return schema
    return {**schema, "properties": {k: props[k] for k in sorted(props)}}


def parse_call(text: str) -> tuple[str, dict[str, Any]] | None:
    """(tool, arguments) from model output, or None when it is not a call."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("tool"), str) or not isinstance(value.get("arguments"), dict):
        return None
    return value["tool"], value["arguments"]
