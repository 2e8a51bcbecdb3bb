"""Jobs: a request to process data, the job that serves it, its units, calls and results."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, JsonValue, model_validator

from api.schemas.common import Identifier, Request, UtcDatetime, exactly_one

JobStatus = Literal["queued", "accepted", "running", "completed", "partially_failed", "failed"]


class CallOf(Request):
    tool: Identifier
    arguments: dict[str, JsonValue] = Field(default_factory=dict)


class ExpectedCall(Request):
    """What is right for one record, where the sender knows it (a benchmark, the demo, a reviewed batch): one call
    (`tool`, `arguments`), `tool: "none"` when no tool fits it, or `calls` when it takes several in order."""

    tool: Identifier | None = None
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    calls: list[CallOf] | None = Field(default=None, min_length=1, max_length=99)

    @model_validator(mode="after")
    def _one_form(self) -> ExpectedCall:
        exactly_one(self, "tool", "calls", why="give tool (with arguments; \"none\" when no tool fits) or calls (exactly one)")
        return self


class ProcessRequest(Request):
    task: str = Field(min_length=1, max_length=2000, description=(
        "What to do with the data, in the company's words; it may stand inside `data` instead (`data.task`)."))
    data: JsonValue = Field(description=(
        "The data: every list of records (objects) in it is processed record by record, its top-level values going "
        "along with each record as context; an object without such lists is one record."))
    company_id: Identifier | None = Field(default=None, description="The key's company, where the caller names it "
                                          "(403 when it names another).")
    use_adapter: bool | None = Field(default=None, description="Ask the company's adapter (default: its agent setting).")
    session_id: Identifier | None = Field(default=None, description="Group this job with others of a session.")
    request_id: Identifier | None = Field(default=None, description="Your id of the request (like Idempotency-Key).")
    tools: list[Identifier] = Field(default_factory=list, max_length=256, description="Limit the job to these tools.")
    expected: list[ExpectedCall] | None = Field(default=None, max_length=100_000, description=(
        "The right call of each record, in record order, when you know it: the job's results and listing then say "
        "whether every call was right. Never shown to the model."))

    @model_validator(mode="before")
    @classmethod
    def _task_in_data(cls, body: Any) -> Any:
        """The seed's shape, `{"data": {"task": ..., "invoices": [...]}}`: the task is taken out of the data."""
        if isinstance(body, dict) and "task" not in body and isinstance(body.get("data"), dict) \
                and isinstance(body["data"].get("task"), str):
            data = dict(body["data"])
            return {**body, "task": data.pop("task"), "data": data}
        return body


class ProcessAccepted(BaseModel):
    job_id: str
    request_id: str
    status: JobStatus
    url: str = Field(description="Where the job's status is read.")
    events_url: str
    duplicate: bool = Field(description="True when this request id was seen before: nothing new was produced.")


class UnitCallPublic(BaseModel):
    step: int
    tool: str
    arguments: JsonValue = None
    status: Literal["requested", "completed", "failed"]
    status_code: int | None = None
    result: JsonValue = None


class UnitPublic(BaseModel):
    unit: int
    status: Literal["pending", "deciding", "calling", "completed", "skipped", "failed"] = Field(
        description="skipped: the model answered that no tool fits the record (nothing was sent).")
    answer: str = Field(default="", description="What ended it: done, none (no tool fits), one_step (the base "
                        "takes one step), step_limit.")
    calls: list[UnitCallPublic] = Field(default_factory=list, description="Its calls in order (a lookup, then the action).")
    tool: str | None = None
    arguments: JsonValue = None
    status_code: int | None = None
    result: JsonValue = None
    error: str = ""
    error_kind: str = ""
    right: bool | None = Field(default=None, description="The call was the expected one (None: no expected call given).")


class ToolCallPublic(BaseModel):
    call_id: str
    unit: int
    step: int
    tool: str
    arguments: JsonValue = None
    attempts: int
    status: Literal["requested", "completed", "failed"]
    status_code: int | None = None
    latency_ms: float | None = None
    error: str = ""
    error_kind: str = ""


class JobPublic(BaseModel):
    job_id: str
    request_id: str
    status: JobStatus
    task: str = ""
    session_id: str | None = None
    requested_at: UtcDatetime | None = None
    accepted_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
    latency_ms: float | None = Field(default=None, description="From acceptance to the end, as the agents measured it.")
    adapter_version: str | None = Field(default=None, description="The company adapter version the job was run with "
                                        "(None: the base model).")
    model: str | None = None
    units_total: int | None = None
    units: list[UnitPublic] = Field(default_factory=list)
    tool_calls: list[ToolCallPublic] = Field(default_factory=list)
    results: JsonValue = Field(default=None, description="The job's result (job_completed), once completed.")
    right: bool | None = Field(default=None, description="Every unit's call was the expected one (None: not known).")
    error: str = ""
    error_kind: str = ""
    url: str
    events_url: str


class JobSummary(BaseModel):
    job_id: str
    request_id: str
    session_id: str | None = None
    task: str
    status: JobStatus
    requested_at: UtcDatetime
    finished_at: UtcDatetime | None = None
    tool_calls: int
    right: bool | None = Field(default=None, description="Every unit's call was the expected one (None: not known).")
    url: str


class JobPage(BaseModel):
    jobs: list[JobSummary]
    total: int = Field(description="Jobs matching the filters in all.")
    limit: int
    offset: int
    next_offset: int | None = Field(description="Offset of the next page; None on the last one.")

