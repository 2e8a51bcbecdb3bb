"""What `cda.client` returns: the automation results of a job, per record, and a training run's verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RecordResult:
    """One record of the data: the tool the agent called (the last of its calls), with which arguments, and what
    the tool answered; `calls` holds every call of the record in order (a lookup, then the action)."""

    unit: int
    status: str  # completed, skipped (no tool fits), failed (or pending/deciding/calling while the job runs)
    tool: str | None
    arguments: Any
    answer: Any  # the company API's answer (its JSON) where the call completed
    status_code: int | None
    error: str = ""
    error_kind: str = ""
    right: bool | None = None  # where the request said which call was right
    calls: tuple[dict[str, Any], ...] = ()  # {step, tool, arguments, status, status_code, result} per call
    ended_by: str = ""  # done, none (no tool fits), one_step (the base), step_limit


@dataclass(frozen=True)
class AutomationResult:
    """A job as the API tells it: its status, the adapter version that decided it, and each record's result."""

    job_id: str
    status: str  # queued, accepted, running, completed, partially_failed (some records failed), failed
    adapter_version: str | None
    records: tuple[RecordResult, ...]
    error: str = ""
    error_kind: str = ""
    left_out: tuple[dict[str, Any], ...] = ()  # parts of the data that were not records, and why
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def done(self) -> bool:
        return self.status in ("completed", "partially_failed", "failed")

    @classmethod
    def from_job(cls, job: dict[str, Any]) -> AutomationResult:
        records = tuple(RecordResult(unit=u["unit"], status=u["status"], tool=u.get("tool"), arguments=u.get("arguments"),
                                     answer=u.get("result"), status_code=u.get("status_code"), error=u.get("error", ""),
                                     error_kind=u.get("error_kind", ""), right=u.get("right"),
                                     calls=tuple(u.get("calls") or ()), ended_by=u.get("answer", ""))
                        for u in job.get("units") or ())
        results = job.get("results") if isinstance(job.get("results"), dict) else {}
        return cls(job_id=job["job_id"], status=job["status"], adapter_version=job.get("adapter_version"),
                   records=records, error=job.get("error", ""), error_kind=job.get("error_kind", ""),
                   left_out=tuple(results.get("left_out") or ()), raw=job)


@dataclass(frozen=True)
class TrainingResult:
    """A training run: `ready` (gated and announced), `rejected` by the gate, `failed`, or still running."""

    request_id: str
    status: str
    version: str | None
    gate: str
    metrics: dict[str, float]
    reason: str = ""
    error: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_run(cls, run: dict[str, Any]) -> TrainingResult:
        return cls(request_id=run["request_id"], status=run["status"], version=run.get("version"),
                   gate=run.get("gate", "pending"), metrics=dict(run.get("metrics") or {}), reason=run.get("reason", ""),
                   error=run.get("error", ""), raw=run)
