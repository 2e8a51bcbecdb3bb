"""Whether a job's calls were right, where the sender said which calls are (`expected` on `POST /process`: a
benchmark, the demo, a reviewed batch). A job is right only when every unit's call is: the right tool with
exactly the right arguments, whatever the tool answered. An expected unit is one call (`{"tool", "arguments"}`),
a sequence (`{"calls": [...]}`: a lookup, then the action), or `{"tool": "none"}` (no tool fits: the unit must be
skipped with no call made). The expected calls ride on the request, never in a
prompt; the verdict goes into the job's results, so the API and the views show it beside the tool outcome."""

from __future__ import annotations

import json
from typing import Any

from core.prompts import DECLINE, same_call
from streams.job_state import JobState, UnitProgress


def expected_calls(raw: Any) -> list[dict[str, Any]] | None:
    """The expected calls of a request's `expected_json`, or None when none (or none readable) were given."""
    if not raw:
        return None
    try:
        value = json.loads(str(raw))
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) and all(isinstance(c, dict) for c in value) else None


def judge(state: JobState, summaries: list[dict[str, Any]], expected: list[dict[str, Any]] | None) -> bool | None:
    """Marks each summary `right` (its unit's call against the expected one) and says whether all were right;
    None when nothing was expected."""
    if expected is None:
        return None
    for summary in summaries:
        unit = int(summary["unit"])
        want = expected[unit] if unit < len(expected) else None
        summary["right"] = want is not None and unit_right(state.unit(unit), want)
    return all(s["right"] for s in summaries) and len(summaries) == len(expected)


def wanted_calls(want: dict[str, Any]) -> list[dict[str, Any]]:
    """The calls an expected unit names, in order (none for a decline)."""
    if isinstance(want.get("calls"), list):
        return [c for c in want["calls"] if isinstance(c, dict)]
    return [] if want.get("tool") == DECLINE else [want]


def unit_right(progress: UnitProgress, want: dict[str, Any]) -> bool:
    """Exactly the expected calls in order, and the unit ended as they mean: skipped for a decline; else not
    skipped, nor run out of steps, nor ended on an answer that was no call (whatever the tools answered)."""
    calls = wanted_calls(want)
    made = progress.calls
    if len(made) != len(calls) or not all(same_call(m.tool, m.arguments, c.get("tool"), c.get("arguments") or {})
                                          for m, c in zip(made, calls, strict=True)):
        return False
    if not calls:
        return progress.outcome == "skipped"
    return progress.outcome != "skipped" and progress.error_kind not in ("step_limit", "invalid_output")
