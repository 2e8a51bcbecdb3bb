"""The prompt contract: how a task, the company's data and its tools become a prompt, and what the model
must answer — a compact JSON tool call. The trainer, the evaluation and the agents all import it from here,
so an adapter is trained on exactly what it is later asked, and serving code never imports training code."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

CALL_MARKER = "Call:"
# The version of the prompt format. Every adapter records the version it was trained for, and the inference
# lifecycle refuses one trained for another: a changed format silently degrades an adapter.
# 1: tools, task, data.  2: optional `Notes:` (company memory) and `Earlier:` (results of the session's earlier
# jobs) between the tools and the task; without context a version-2 prompt reads exactly as version 1.
# 3: a unit takes steps: after a call, the next prompt shows it and its answer under `Steps:` (after the data),
# and the model may answer `done` (after a call) or `none` (no tool fits; first step only) instead of a call.
PROMPT_VERSION = 3
DONE = "done"  # the unit needs no further call
DECLINE = "none"  # no tool of the company fits the record: the unit is skipped, nothing is sent
ANSWERS = frozenset({DONE, DECLINE})  # names no company tool may take
ANSWER_CHARS = 300  # a tool's answer shown in a later step's prompt is cut here (the prompt contract's, not a setting)
_SECRET_KEY = re.compile(r"secret|token|passw|api[_-]?key|authori[sz]ation|credential|cookie", re.IGNORECASE)


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
    steps: tuple[str, ...] = ()  # the unit's calls so far with their answers (`render_step`), oldest first

    @classmethod
    def of(cls, task: str, payload_json: str, tools: Sequence[ToolSpec], notes: Sequence[str] = (),
           earlier: Sequence[str] = (), steps: Sequence[str] = ()) -> PromptContext:
        return cls(tuple(tools), task, payload_json, tuple(notes), tuple(earlier), tuple(steps))


def render(context: PromptContext) -> str:
    """The prompt: the company's tools, its notes, the session's earlier results, the task and its data, then
    the unit's steps so far, then the call marker and the space after it. The one function that turns a context
    into model input."""
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
    steps = "Steps:\n" + "".join(f"- {_line(s)}\n" for s in context.steps) if context.steps else ""
    return f"Tools:\n{listed}\n{sections}Task: {context.task}\nData: {data}\n{steps}{CALL_MARKER} "


def parse_prompt(prompt: str) -> PromptContext | None:
    """The context (without its tools) of a prompt `render` made (a job's recorded one), or None when it is not
    one: how a recorded decision is replayed in its own context."""
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
    steps: list[str] = []
    if task_at + 2 < len(lines) and lines[task_at + 2] == "Steps:":
        steps = [line[2:] for line in lines[task_at + 3:] if line.startswith("- ")]
    return PromptContext.of(lines[task_at][len("Task: "):], lines[task_at + 1][len("Data: "):], (), found["Notes:"],
                            found["Earlier:"], steps)


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


def answer_text(answer: Any) -> str:
    """A tool's answer as a later step's prompt shows it: secret-looking fields blanked, at most `ANSWER_CHARS`."""
    text = compact(_redacted(answer))
    return text if len(text) <= ANSWER_CHARS else text[:ANSWER_CHARS] + "..."


def _redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "[redacted]" if _SECRET_KEY.search(str(k)) else _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def render_step(tool_name: str, arguments: dict[str, Any], answer: Any) -> str:
    """One call the unit made, as the next step's prompt shows it: the call, then what the tool answered."""
    return f"{tool_name} {compact(arguments)} -> {answer_text(answer)}"


def render_target(tool_name: str, arguments: dict[str, Any]) -> str:
    """The answer: `{"tool":...,"arguments":{...}}` with sorted keys and no whitespace, not even a leading space:
    exactly what guided decoding emits (its grammar allows no whitespace), so training and serving see the
    same tokens from the first one on."""
    return json.dumps({"tool": tool_name, "arguments": json.loads(compact(arguments))}, separators=(",", ":"))


def same_call(tool: str | None, arguments: Any, right_tool: str | None, right_arguments: Any) -> bool:
    """The right tool with exactly the right arguments (compared as canonical JSON): what the gate, the agents'
    verdict on expected calls and the benchmarks all count as a right call."""
    return tool == right_tool and compact(arguments) == compact(right_arguments)


def call_schema(tools: Sequence[ToolSpec], first_step: bool = True) -> dict[str, Any]:
    """JSON schema of a unit's next answer: a call to any of `tools` (guided decoding can only produce a call that
    fits one), or `none` at the first step (no tool fits), or `done` after it (the unit needs no further call)."""
    answer = DECLINE if first_step else DONE
    return {"anyOf": [
        *({"type": "object", "properties": {"tool": {"const": t.name}, "arguments": _sorted_schema(t.parameters)},
           "required": ["tool", "arguments"], "additionalProperties": False}
          for t in sorted(tools, key=lambda t: t.name) if t.name not in ANSWERS),
        {"type": "object", "properties": {"tool": {"const": answer},
                                          "arguments": {"type": "object", "properties": {}, "additionalProperties": False}},
         "required": ["tool", "arguments"], "additionalProperties": False},
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
