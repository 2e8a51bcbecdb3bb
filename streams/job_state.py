"""A job's state is the fold of its own events on `company_automation_jobs` — nothing else. A worker that
resumes a job after a crash folds what was recorded and goes on from there: a recorded decision is not
asked again, a call requested but not completed is sent again (same Idempotency-Key), a completed call is
never sent again, and a unit of several steps goes on from the step after its last completed call."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.ids import UNIT_STEPS
from topics.events import Event


@dataclass
class CallRecord:
    """One call a unit made: what was asked, and how it ended (None while it has not)."""

    step: int
    tool: str
    arguments: dict[str, Any]
    outcome: str | None = None  # "completed" | "failed"
    status_code: int | None = None
    result: Any = None

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.step, "tool": self.tool, "arguments": self.arguments,
                               "status": self.outcome or "requested"}
        if self.outcome == "completed":
            out |= {"status_code": self.status_code, "result": self.result}
        return out


@dataclass
class UnitProgress:
    """What the log says about one unit of work: its calls, step by step, and how it ended. `tool`, `arguments`,
    `status_code` and `result` are those of its latest call."""

    unit: int
    asked: bool = False  # a step_started recorded for the unit's latest step: the model was (being) asked
    step: int = 0  # the latest step recorded
    adapter_version: str | None = None  # which adapter decided the latest step (None: the base)
    calls: list[CallRecord] = field(default_factory=list)
    outcome: str | None = None  # how the unit ended: "completed" | "skipped" | "failed"
    answer: str = ""  # what ended it without a failed call: done, none, one_step, step_limit
    error: str = ""
    error_kind: str = ""

    def _latest(self) -> CallRecord | None:
        return self.calls[-1] if self.calls else None

    @property
    def tool(self) -> str | None:
        latest = self._latest()
        return latest.tool if latest else None

    @property
    def arguments(self) -> dict[str, Any] | None:
        latest = self._latest()
        return latest.arguments if latest else None

    @property
    def status_code(self) -> int | None:
        latest = self._latest()
        return latest.status_code if latest else None

    @property
    def result(self) -> Any:
        latest = self._latest()
        return latest.result if latest else None

    @property
    def pending_call(self) -> CallRecord | None:
        """The latest call when it was requested and has not ended: a resumed worker sends it again."""
        latest = self._latest()
        return latest if latest is not None and latest.outcome is None and self.outcome is None else None

    @property
    def decided(self) -> bool:
        return bool(self.calls)

    @property
    def done(self) -> bool:
        return self.outcome is not None

    def call_at(self, step: int) -> CallRecord | None:
        return next((c for c in self.calls if c.step == step), None)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"unit": self.unit, "tool": self.tool, "arguments": self.arguments,
                               "status": self.outcome, "calls": [c.public() for c in self.calls]}
        if self.answer:
            out["answer"] = self.answer
        if self.outcome == "completed":
            out |= {"status_code": self.status_code, "result": self.result}
        else:
            out |= {"error": self.error, "error_kind": self.error_kind}
        return out


@dataclass
class JobState:
    job_id: str = ""
    accepted: bool = False
    finished: str | None = None  # "completed" | "partially_failed" (some units failed) | "failed"
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
        step = int(event["step"])
        if not (progress.asked and progress.step == step):
            state.steps += 1
        progress.asked, progress.step = True, step
        progress.adapter_version = event.data.get("adapter_version")
    elif kind == "tool_call_requested":
        progress = state.unit(_unit_of(event))
        step = int(event["step"])
        if progress.call_at(step) is None:
            state.tool_calls += 1
            progress.calls.append(CallRecord(step, str(event["tool_name"]), json.loads(event["arguments_json"])))
        progress.step = max(progress.step, step)
    elif kind == "tool_call_completed":
        progress = state.unit(_unit_of(event))
        call = progress.call_at(int(event["step"]))
        if call is not None:
            call.outcome, call.status_code = "completed", event.data.get("status_code")
            call.result = json.loads(event["result_json"])
    elif kind == "tool_call_failed":
        progress = state.unit(_unit_of(event))
        call = progress.call_at(int(event["step"]))  # None when the decision itself failed: no call was made
        if call is not None:
            call.outcome = "failed"
        progress.outcome, progress.error, progress.error_kind = "failed", str(event["error"]), str(event["error_kind"])
    elif kind == "unit_ended":
        progress = state.unit(int(event["unit"]))
        progress.outcome, progress.answer = str(event["status"]), str(event["answer"])
        if progress.outcome != "completed":
            progress.error, progress.error_kind = str(event["reason"]), str(event["answer"])
    elif kind == "job_completed":
        state.finished = "partially_failed" if failed_units(event) else "completed"
    elif kind == "job_failed":
        state.finished = "failed"
    return state


def failed_units(completed: Event) -> int:
    """How many units of a `job_completed` failed (its result counts them)."""
    try:
        result = json.loads(str(completed.data.get("result_json") or "{}"))
    except ValueError:
        return 0
    return int(result.get("failed") or 0) if isinstance(result, dict) else 0


def fold(events: Iterable[Event]) -> JobState:
    state = JobState()
    for event in events:
        mutate(state, event)
    return state
