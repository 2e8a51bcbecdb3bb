"""What one tool call came to: what the API bridge returns and the agent loop records."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CallOutcome:
    """What one tool call came to; `error_kind` is one stable word the agent loop records and counts."""

    ok: bool
    status_code: int | None
    result_json: str
    error: str
    error_kind: str
    retryable: bool
    attempts: int
    latency_ms: float
