"""Jobs: a request to process data, the job that serves it, its units, calls and results."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, JsonValue

from streams.api.schemas.common import Identifier, Request, UtcDatetime

JobStatus = Literal["queued", "accepted", "running", "completed", "failed"]


class ProcessRequest(Request):
    task: str = Field(min_length=1, max_length=2000, description="What to do with the data, in the company's words.")
    data: JsonValue = Field(description="The data: a payload holding a list of records is processed record by record.")
    use_adapter: bool | None = Field(default=None, description="Ask the company's adapter (default: its agent setting).")
    session_id: Identifier | None = Field(default=None, description="Group this job with others of a session.")
    request_id: Identifier | None = Field(default=None, description="Your id of the request (like Idempotency-Key).")
    tools: list[Identifier] = Field(default_factory=list, max_length=256, description="Limit the job to these tools.")


class ProcessAccepted(BaseModel):
    job_id: str
    request_id: str
    status: JobStatus
    url: str = Field(description="Where the job's status is read.")
    events_url: str
    duplicate: bool = Field(description="True when this request id was seen before: nothing new was produced.")


class UnitPublic(BaseModel):
    unit: int
    status: Literal["pending", "deciding", "calling", "completed", "failed"]
    tool: str | None = None
    arguments: JsonValue = None
    status_code: int | None = None
    result: JsonValue = None
    error: str = ""
    error_kind: str = ""


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
    url: str


class JobPage(BaseModel):
    jobs: list[JobSummary]
    total: int = Field(description="Jobs matching the filters in all.")
    limit: int
    offset: int
    next_offset: int | None = Field(description="Offset of the next page; None on the last one.")

