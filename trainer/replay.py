"""The company's own served decisions, replayed: each step an adapter decided in a completed job, with the
prompt the agents recorded for it (its task, unit data, notes, earlier results and the unit's steps so far) and
the call that then succeeded, or the `done` that ended the unit. The gate scores a candidate on a held-out
share of them, in the context they really had.

For the gate only steps an adapter decided count: a call the base made is no evidence of the company's
practice (the base does not know it), and replaying it would teach the gate the model's own mistakes.
`from_history` training takes every succeeded step, in its recorded context: the company asked for it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from core.prompts import DONE, parse_prompt
from core.settings import Settings
from topics.reads import read_to_end
from trainer.dataset import in_eval
from trainer.examples import Example


@dataclass
class _Step:
    prompt: str = ""
    adapter_version: str | None = None
    unit: int = 0
    tool: str = ""
    arguments_json: str = ""
    completed: bool = False


def replay_examples(settings: Settings, company_id: str, adapter_only: bool = True) -> list[Example]:
    """Every step of the company's completed jobs whose call succeeded, as an example in its recorded context:
    only those an adapter decided (the gate's replay), or all of them (`from_history` training, which the
    company asked for)."""
    steps: dict[tuple[str, int], _Step] = {}
    finished: set[str] = set()
    for received in read_to_end(settings, "company_automation_jobs", "cda-trainer-replay"):
        event = received.event
        if event.company_id != company_id:
            continue
        job = str(event.data.get("job_id") or "")
        if event.type == "job_completed":
            finished.add(job)
            continue
        if "step" not in event.data:
            continue
        if event.type == "unit_ended":  # `done` after the unit's calls is a decision as well (a decline is not
            if event["answer"] == DONE:  # replayed: nothing the company's API did confirms it)
                step = steps.setdefault((job, int(event["step"])), _Step())
                step.tool, step.arguments_json, step.completed = DONE, "{}", True
            continue
        step = steps.setdefault((job, int(event["step"])), _Step())
        if event.type == "step_started":
            step.prompt, step.adapter_version = str(event.data.get("prompt") or ""), event.data.get("adapter_version")
            step.unit = int(event.data.get("unit") or 0)
        elif event.type == "tool_call_requested":
            step.tool, step.arguments_json = str(event["tool_name"]), str(event["arguments_json"])
        elif event.type == "tool_call_completed":
            step.completed = True
    out = []
    for (job, _), step in sorted(steps.items()):
        parsed = parse_prompt(step.prompt) if step.prompt else None
        decided = bool(step.adapter_version) or not adapter_only
        if job not in finished or not step.completed or not decided or not step.tool or parsed is None:
            continue
        try:
            json.loads(parsed.payload_json)
            arguments = json.loads(step.arguments_json)
        except json.JSONDecodeError:
            continue
        out.append(Example(parsed.task, parsed.payload_json, step.tool, arguments, parsed.notes, parsed.earlier,
                           parsed.steps, group=hashlib.sha256(f"{job}/{step.unit}".encode()).hexdigest()))
    return out


def held_out_replay(settings: Settings, company_id: str) -> list[Example]:
    """The held-out share of the replayable steps (the dataset's stable split, so it stays put across requests)."""
    return [e for e in replay_examples(settings, company_id) if in_eval(e)]
