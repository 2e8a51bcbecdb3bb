"""Where a company's training material comes from: its current tools (folded from `company_tools`) and,
for `FROM_HISTORY` requests, its completed jobs whose tool calls succeeded (folded from the job events)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from core.prompts import ToolSpec, render_step
from core.settings import Settings
from topics.events import Event
from topics.reads import read_to_end
from trainer.dataset import BadData, Dataset, build_dataset
from trainer.examples import Example
from trainer.examples_store import load_examples
from trainer.replay import replay_examples


def company_tools(settings: Settings, company_id: str) -> list[ToolSpec]:
    """The company's tools now: the latest fact per tool, removals honoured."""
    latest: dict[str, dict[str, object] | None] = {}
    for received in read_to_end(settings, "company_tools", "cda-trainer-read"):
        event = received.event
        if event.company_id != company_id:
            continue
        latest[str(event["tool_name"])] = dict(event.data) if event.type == "tool_registered" else None
    return [ToolSpec(name, str(data["description"]), json.loads(str(data["parameters_schema_json"])))
            for name, data in sorted(latest.items()) if data is not None]


def history_examples(settings: Settings, company_id: str) -> list[Example]:
    """One example per completed job: its task and data, and its first tool call that succeeded."""
    payloads: dict[str, str] = {}
    for received in read_to_end(settings, "company_data", "cda-trainer-read"):
        if received.event.company_id == company_id:
            payloads[str(received.event["request_id"])] = str(received.event["payload_json"])
    jobs: dict[str, dict[str, object]] = {}
    calls: dict[tuple[str, str], dict[str, object]] = {}
    for received in read_to_end(settings, "company_automation_jobs", "cda-trainer-read"):
        event = received.event
        if event.company_id != company_id:
            continue
        job = jobs.setdefault(str(event["job_id"]), {})
        if event.type == "job_accepted":
            job.update(task=event["task"], request_id=event["request_id"])
        elif event.type == "tool_call_requested":
            calls[(str(event["job_id"]), str(event["call_id"]))] = {"tool": event["tool_name"], "args": event["arguments_json"]}
        elif event.type == "tool_call_completed":
            job.setdefault("first_success", (str(event["job_id"]), str(event["call_id"])))
        elif event.type == "job_completed":
            job["completed"] = True
    examples = []
    for job in jobs.values():
        success = job.get("first_success")
        if not job.get("completed") or success is None or str(job.get("request_id")) not in payloads:
            continue
        call = calls.get(success)  # type: ignore[arg-type]
        if call is None:
            continue
        examples.append(Example(str(job["task"]), payloads[str(job["request_id"])], str(call["tool"]),
                                json.loads(str(call["args"]))))
    return examples


def labelled_example(raw: dict[str, Any]) -> Example:
    """A training request's record as an example: one decision, after the calls (`steps_json`) before it. The
    decisions of one labelled unit share a group (from `unit_key`), so they fall on one side of the split."""
    steps = json.loads(str(raw.get("steps_json") or "[]"))
    key = str(raw.get("unit_key") or "")
    return Example(str(raw["task"]), str(raw["payload_json"]), str(raw["tool_name"]), json.loads(raw["arguments_json"]),
                   steps=tuple(render_step(str(s["tool"]), dict(s["arguments"]), s.get("answer")) for s in steps),
                   group=hashlib.sha256(key.encode()).hexdigest() if key else "")


def request_dataset(settings: Settings, request: Event, max_examples: int) -> Dataset:
    """The checked, split dataset a request trains on: its inline and stored examples, or the company's own
    history (each step in the context its prompt recorded); `BadData` with per-reason counts (a record that
    cannot be read counts as `invalid_arguments_json`)."""
    tools = company_tools(settings, request.company_id)
    if not tools:
        raise BadData(f"company {request.company_id} has no registered tools", {"no_tools": 1})
    unreadable = 0
    if request["source"] == "FROM_HISTORY":  # each step in the context its prompt recorded (older jobs: none)
        examples = replay_examples(settings, request.company_id, adapter_only=False) or history_examples(
            settings, request.company_id)
    else:
        raw_examples = list(request["examples"])
        if ref := request.data.get("examples_ref"):
            raw_examples += load_examples(settings, request.company_id, str(ref))
        examples = []
        for raw in raw_examples:
            try:
                examples.append(labelled_example(raw))
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                unreadable += 1
    try:
        return build_dataset(examples, tools, max_examples=max_examples)
    except BadData as exc:
        if unreadable:
            exc.counts["invalid_arguments_json"] = unreadable
        raise
