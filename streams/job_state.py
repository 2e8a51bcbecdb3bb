"""A job's state is the fold of its own events on `company_automation_jobs` — nothing else. A worker that
resumes a job after a crash folds what was recorded and goes on from there: a recorded decision is not
asked again, a call requested but not completed is sent again (same Idempotency-Key), a completed call is
never sent again."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.ids import UNIT_STEPS
from topics.events import Event


@dataclass
class UnitProgress:
    """What the log says about one unit of work."""

    unit: int
    asked: bool = False  # step_started recorded: the model was (being) asked
    tool: str | None = None  # the decision, once tool_call_requested is recorded
    arguments: dict[str, Any] | None = None
    step: int = 0
    outcome: str | None = None  # "completed" | "failed"
    status_code: int | None = None
    result: Any = None
    error: str = ""
    error_kind: str = ""

    @property
    def decided(self) -> bool:
        return self.tool is not None

    @property
    def done(self) -> bool:
        return self.outcome is not None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"unit": self.unit, "tool": self.tool, "status": self.outcome}
        if self.outcome == "completed":
            out |= {"status_code": self.status_code, "result": self.result}
        else:
            out |= {"error": self.error, "error_kind": self.error_kind}
        return out


@dataclass
class JobState:
    job_id: str = ""
    accepted: bool = False
    finished: str | None = None  # "completed" | "failed"
    units: dict[int, UnitProgress] = field(default_factory=dict)
    steps: int = 0
    tool_calls: int = 0

    def unit(self, index: int) -> UnitProgress:
        return self.units.setdefault(index, UnitProgress(index))


def _unit_of(event: Event) -> int:
    return int(event.data.get("unit", int(event["step"]) // UNIT_STEPS)) if event.type == "step_started" \
        else int(event["step"]) // UNIT_STEPS


def mutate(state: JobState, event: Event) -> JobState:
    """Apply one event of the job (redelivered duplicates change nothing)."""
    kind = event.type
    state.job_id = str(event.data.get("job_id", state.job_id))
    if kind == "job_accepted":
        state.accepted = True
    elif kind == "step_started":
        progress = state.unit(_unit_of(event))
        if not progress.asked:
            state.steps += 1
        progress.asked, progress.step = True, int(event["step"])
    elif kind == "tool_call_requested":
        progress = state.unit(_unit_of(event))
        if not progress.decided:
            state.tool_calls += 1
        progress.tool, progress.arguments = str(event["tool_name"]), json.loads(event["arguments_json"])
        progress.step = int(event["step"])
    elif kind == "tool_call_completed":
        progress = state.unit(_unit_of(event))
        progress.outcome, progress.status_code = "completed", event.data.get("status_code")
        progress.result = json.loads(event["result_json"])
    elif kind == "tool_call_failed":
        progress = state.unit(_unit_of(event))
        progress.outcome, progress.error, progress.error_kind = "failed", str(event["error"]), str(event["error_kind"])
        progress.tool = progress.tool or str(event["tool_name"]) or None
    elif kind in ("job_completed", "job_failed"):
        state.finished = "completed" if kind == "job_completed" else "failed"
    return state


def fold(events: Iterable[Event]) -> JobState:
    state = JobState()
    for event in events:
        mutate(state, event)
    return state
