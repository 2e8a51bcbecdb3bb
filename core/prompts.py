"""The prompt contract: how a task, the company's data and its tools become a prompt, and what the model
must answer — a compact JSON tool call. The trainer, the evaluation and the agents all import it from here,
so an adapter is trained on exactly what it is later asked, and serving code never imports training code."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

CALL_MARKER = "Call:"
# The version of the prompt format. Every adapter records the version it was trained for, and the inference
# lifecycle refuses one trained for another: a changed format silently degrades an adapter.
# 1: tools, task, data.  2: optional `Notes:` (company memory) and `Earlier:` (results of the session's earlier
# jobs) between the tools and the task; without context a version-2 prompt reads exactly as version 1.
PROMPT_VERSION = 2


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


@dataclass(frozen=True)
class PromptContext:
    """Everything one decision's prompt shows: the tools it may call, the notes recalled from the company's
    memory (most relevant first), the results of the session's earlier jobs (oldest first), the task and its
    data. The agents, the trainer's dataset, the gate, the benchmarks and the demo all build one of these and
    `render` it, so an adapter is trained and gated on exactly the bytes the agents send."""

    tools: tuple[ToolSpec, ...]
    task: str
    payload_json: str
    notes: tuple[str, ...] = ()
    earlier: tuple[str, ...] = ()

    @classmethod
    def of(cls, task: str, payload_json: str, tools: Sequence[ToolSpec], notes: Sequence[str] = (),
           earlier: Sequence[str] = ()) -> PromptContext:
        return cls(tuple(tools), task, payload_json, tuple(notes), tuple(earlier))


def render(context: PromptContext) -> str:
    """The prompt: the company's tools, its notes, the session's earlier results, the task and its data, then
    the call marker and the space after it. The one function that turns a context into model input."""
    listed = "\n".join(f"- {t.signature()}" for t in sorted(context.tools, key=lambda t: t.name))
    try:
        data = compact(json.loads(context.payload_json))
    except json.JSONDecodeError:
        data = context.payload_json
    sections = ""
    if context.notes:
        sections += "Notes:\n" + "".join(f"- {_line(n)}\n" for n in context.notes)
    if context.earlier:
        sections += "Earlier:\n" + "".join(f"- {_line(e)}\n" for e in context.earlier)
    return f"Tools:\n{listed}\n{sections}Task: {context.task}\nData: {data}\n{CALL_MARKER} "


def parse_prompt(prompt: str) -> tuple[str, str, tuple[str, ...], tuple[str, ...]] | None:
    """(task, data, notes, earlier) of a prompt `render` made (a job's recorded one), or None when it is not one:
    how a recorded decision is replayed in its own context."""
    lines = prompt.split("\n")
    try:
        task_at = max(i for i, line in enumerate(lines) if line.startswith("Task: "))
    except ValueError:
        return None
    if task_at + 1 >= len(lines) or not lines[task_at + 1].startswith("Data: "):
        return None
    found: dict[str, list[str]] = {"Notes:": [], "Earlier:": []}
    current: list[str] | None = None
    for line in lines[:task_at]:
        if line in found:
            current = found[line]
        elif line.endswith(":") and not line.startswith("- "):
            current = None
        elif current is not None and line.startswith("- "):
            current.append(line[2:])
    return (lines[task_at][len("Task: "):], lines[task_at + 1][len("Data: "):], tuple(found["Notes:"]),
            tuple(found["Earlier:"]))


def render_prompt(task: str, payload_json: str, tools: Sequence[ToolSpec], notes: Sequence[str] = (),
                  earlier: Sequence[str] = ()) -> str:
    """`render` of a context given field by field (the base's pretraining and probes, which have no memory)."""
    return render(PromptContext.of(task, payload_json, tools, notes, earlier))


def _line(text: str) -> str:
    """One line of context: a newline inside an entry would read as the next section."""
    return " ".join(text.split())


def render_earlier(tool_name: str, result: Any) -> str:
    """An earlier job of the session as the prompt shows it: the tool it called and what that tool answered."""
    return f"{tool_name}: {compact(result)}"


def render_target(tool_name: str, arguments: dict[str, Any]) -> str:
    """The answer: `{"tool":...,"arguments":{...}}` with sorted keys and no whitespace, not even a leading space:
    exactly what guided decoding emits (its grammar allows no whitespace), so training and serving see the
    same tokens from the first one on."""
    return json.dumps({"tool": tool_name, "arguments": json.loads(compact(arguments))}, separators=(",", ":"))


def same_call(tool: str | None, arguments: Any, right_tool: str | None, right_arguments: Any) -> bool:
    """The right tool with exactly the right arguments (compared as canonical JSON): what the gate, the agents'
    verdict on expected calls and the benchmarks all count as a right call."""
    return tool == right_tool and compact(arguments) == compact(right_arguments)


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
