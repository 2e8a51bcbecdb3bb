"""What the agents record stays under the broker's record limit: an answer or a job's results too large to
record whole is recorded as a stand-in that says so, with its size (the company's API keeps the whole)."""

from __future__ import annotations

import json
from typing import Any

HEAD_CHARS = 2_000


def bounded_answer(result_json: str, limit: int) -> str:
    """A call's answer as recorded: whole when within `limit` bytes, else its size and its first characters."""
    size = len(result_json.encode())
    if size <= limit:
        return result_json
    return json.dumps({"truncated": True, "bytes": size, "head": result_json[:min(HEAD_CHARS, limit // 4)]})


def bounded_results(result: dict[str, Any], limit: int) -> str:
    """A job's results as `job_completed` carries them: whole when within `limit` bytes; else without each
    unit's answer (`results_truncated`, the size recorded; the calls' own events keep them), and if still
    too large, only the first units (`units_shown`); the counts always stay."""
    text = json.dumps(result, separators=(",", ":"), default=str)
    if len(text.encode()) <= limit:
        return text
    units = [{k: v for k, v in u.items() if k not in ("result", "calls")} for u in result.get("units", [])]
    slim = {**result, "units": units, "results_truncated": True, "bytes": len(text.encode())}
    text = json.dumps(slim, separators=(",", ":"), default=str)
    shown = len(units)
    while len(text.encode()) > limit and shown:
        shown //= 2
        text = json.dumps({**slim, "units": units[:shown], "units_shown": shown}, separators=(",", ":"), default=str)
    if len(text.encode()) > limit:  # even the counts and the left-out parts are too large: the counts alone
        counts = {k: v for k, v in result.items() if isinstance(v, (int, float, bool))}
        text = json.dumps({**counts, "units": [], "units_shown": 0, "results_truncated": True,
                           "bytes": len(json.dumps(result, default=str).encode())}, separators=(",", ":"))
    return text
