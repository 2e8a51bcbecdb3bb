"""Whether a job's calls were right, where the sender said which calls are (`expected` on `POST /process`: a
benchmark, the demo, a reviewed batch). A job is right only when every unit's call is: the right tool with
exactly the right arguments, whatever the tool answered. The expected calls ride on the request, never in a
prompt; the verdict goes into the job's results, so the API and the views show it beside the tool outcome."""

from __future__ import annotations

import json
from typing import Any

from core.prompts import same_call
from streams.job_state import JobState


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
        progress = state.unit(unit)
        summary["right"] = want is not None and same_call(progress.tool, progress.arguments or {}, want.get("tool"),
                                                          want.get("arguments") or {})
    return all(s["right"] for s in summaries) and len(summaries) == len(expected)
