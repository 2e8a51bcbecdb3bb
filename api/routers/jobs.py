"""`POST /company-automation/process` and the company's jobs: one, all, and one's events as they happen."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from api import reads
from api.deps import CompanyDep, ContextDep, same_company
from api.errors import ApiError, not_found
from api.job_views import job_public, queued
from api.schemas.common import ERRORS, NOT_FOUND, OTHER_COMPANY, REUSED_KEY
from api.schemas.jobs import JobPage, JobPublic, JobStatus, JobSummary, ProcessAccepted, ProcessRequest
from api.urls import job_events_url, job_url
from context.units import split_payload
from core.identifiers import ID_PATTERN, is_identifier
from streams.ids import event_id, job_id_for
from topics.events import Event
from topics.request_hash import request_hash

router = APIRouter(prefix="/company-automation", tags=["jobs"], responses=ERRORS)
JobId = Annotated[str, Path(pattern=ID_PATTERN, max_length=128, description="The job's id.")]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255,
                                              description="The same key returns the same job and produces nothing new.")]
TERMINAL = ("job_completed", "job_failed")


def request_id_of(idempotency_key: str | None, body_request_id: str | None) -> str:
    """The request id: the client's (header or body), else a fresh one; a key that is no identifier is hashed."""
    given = idempotency_key or body_request_id
    if given is None:
        return uuid.uuid4().hex
    return given if is_identifier(given) else "idem-" + hashlib.sha256(given.encode()).hexdigest()[:40]


@router.post("/process", status_code=202, response_model=ProcessAccepted,
             responses={**OTHER_COMPANY, **REUSED_KEY}, summary="Process company data")
async def process(body: ProcessRequest, request: Request, caller: CompanyDep, ctx: ContextDep,
                  idempotency_key: IdempotencyKey = None) -> ProcessAccepted:
    """Produce one `data_process_requested`; the agents turn it into a job. Answers once the broker has it."""
    company = caller.company_id
    same_company(caller, body.company_id)
    request_id = request_id_of(idempotency_key, body.request_id)
    job_id = job_id_for(company, request_id)
    try:
        payload_json = json.dumps(body.data, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise ApiError(422, "body.data: numbers must be finite (no NaN or Infinity)") from None
    if len(payload_json.encode()) > ctx.settings.agent_max_payload_bytes:
        raise ApiError(413, f"data: {len(payload_json.encode())} bytes, more than the "
                            f"{ctx.settings.agent_max_payload_bytes} a job accepts")
    split = split_payload(body.data)
    if not split.units:
        raise ApiError(422, "body.data: no records: " + "; ".join(why for _, why in split.left_out))
    step_limit = ctx.agent_settings(company).step_limit
    if len(split.units) > step_limit:
        raise ApiError(413, f"data: {len(split.units)} records, more than the company's step limit of {step_limit} "
                            f"records a job takes; send them as several jobs")
    expected_json = None
    if body.expected is not None:
        units = len(split.units)
        if len(body.expected) != units:
            raise ApiError(422, f"body.expected: {len(body.expected)} expected calls for {units} records; give one per "
                                f"record, in record order")
        expected_json = json.dumps([c.model_dump(exclude_none=True) for c in body.expected], separators=(",", ":"), sort_keys=True)

    asked = {"task": body.task, "payload_json": payload_json, "tools": body.tools, "session_id": body.session_id,
             "use_adapter": body.use_adapter, "expected_json": expected_json}
    fingerprint = request_hash(job_id, asked)

    def accepted(duplicate: bool, first_hash: str = "") -> ProcessAccepted:
        if duplicate and first_hash and first_hash != fingerprint:
            raise ApiError(409, f"request {request_id} was made before with another body (Idempotency-Key or "
                                "request_id reused): send the same body to get its job, or a new key")
        return ProcessAccepted(job_id=job_id, request_id=request_id, status="queued", url=job_url(request, job_id),
                               events_url=job_events_url(request, job_id), duplicate=duplicate)

    while (pending := ctx.inflight.get(job_id)) is not None:  # the same request id in flight: wait for it
        await asyncio.shield(pending)
    if (seen := ctx.recent.get(company, "job", job_id)) is not None:
        return accepted(True, str(seen.get("request_hash", "")))
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    ctx.inflight[job_id] = future
    try:
        if (idempotency_key or body.request_id) and (
                first := await ctx.lookups.request_hash(company, job_id)) is not None:
            return accepted(True, first)
        event = Event.new("data_process_requested", company, event_id=event_id(job_id, "data_process_requested"),
                          request_id=request_id, job_id=job_id, **asked)
        await ctx.producer.send([event])
        ctx.recent.add(company, "job", job_id, {"request_id": request_id, "task": body.task,
                                                "session_id": body.session_id, "units": len(split.units),
                                                "requested_at": datetime.now(timezone.utc),
                                                "request_hash": fingerprint})
        return accepted(False)
    finally:
        del ctx.inflight[job_id]
        future.set_result(None)


async def _read_job(ctx: ContextDep, request: Request, company: str, job_id: str) -> JobPublic | None:
    view = await run_in_threadpool(reads.job_view, ctx.store, company, job_id)
    if view is not None:
        return job_public(view, job_url(request, job_id), job_events_url(request, job_id))
    info = ctx.recent.get(company, "job", job_id)
    return queued(job_id, info, job_url(request, job_id), job_events_url(request, job_id)) if info else None


@router.get("/jobs/{job_id}", response_model=JobPublic, responses=NOT_FOUND, name="get_job", summary="A job")
async def get_job(job_id: JobId, request: Request, caller: CompanyDep, ctx: ContextDep,
                  wait: Annotated[float, Query(ge=0, le=600, description="Hold the request until the job ends, at "
                                               "most this many seconds (bounded by the server).")] = 0) -> JobPublic:
    """Status, units, tool calls with their outcomes, results, the adapter version used, latency."""
    deadline = time.monotonic() + min(wait, ctx.settings.api_max_wait_s)
    hold = ctx.holds.take(caller.key_id) if wait > 0 else None
    try:
        while True:
            job = await _read_job(ctx, request, caller.company_id, job_id)
            if job is None:
                raise not_found("job", job_id)
            if job.status in ("completed", "partially_failed", "failed") or time.monotonic() >= deadline:
                return job
            await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    finally:
        if hold is not None:
            hold.release()


@router.get("/jobs", response_model=JobPage, summary="The company's jobs")
async def list_jobs(request: Request, caller: CompanyDep, ctx: ContextDep,
                    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
                    session_id: Annotated[str | None, Query(pattern=ID_PATTERN, max_length=128)] = None,
                    since: Annotated[datetime | None, Query(description="Only jobs requested from this time.")] = None,
                    limit: Annotated[int, Query(ge=1, le=500)] = 50,
                    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
                    order: Annotated[Literal["newest", "oldest"], Query()] = "newest") -> JobPage:
    """Newest first by default; queued jobs (not yet accepted by the agents) are listed too."""
    if since is not None and not datetime(1970, 1, 2, tzinfo=timezone.utc) <= _aware(since) <= datetime(2200, 1, 1, tzinfo=timezone.utc):
        raise ApiError(422, "query.since: expected a time from 1970 to 2200")
    rows, total = await run_in_threadpool(reads.jobs_page, ctx.store, caller.company_id, status=status,
                                          session_id=session_id, since=since and _aware(since), limit=limit,
                                          offset=offset, order=order)
    jobs = [JobSummary(**{**row, "session_id": row["session_id"] or None,
                          "finished_at": row["finished_at"] if row["status"] in ("completed", "partially_failed", "failed") else None},
                       url=job_url(request, row["job_id"])) for row in rows]
    return JobPage(jobs=jobs, total=total, limit=limit, offset=offset,
                   next_offset=offset + len(jobs) if offset + len(jobs) < total else None)


WITHHELD = "[withheld: this prompt quoted a memory entry that was deleted since]"


def withhold_forgotten_notes(data: dict[str, Any], exists: Callable[[str], bool]) -> dict[str, Any]:
    """A step's recorded prompt, served back only while every memory entry it quoted still exists: deleting an
    entry removes it from what the company is shown of its past prompts too."""
    if data.get("type") != "step_started" or not data.get("prompt"):
        return data
    if all(exists(str(entry)) for entry in data.get("memory_entries") or ()):
        return data
    return {**data, "prompt": WITHHELD}


# One event of the stream (the schema of a text/event-stream response describes each event, before OpenAPI 3.2)
SSE_EVENT: dict[str, Any] = {"type": "object", "required": ["event", "id", "data"], "properties": {
    "event": {"type": "string", "description": "The job event's type"},
    "id": {"type": "string", "description": "The job event's id"},
    "data": {"type": "string", "contentMediaType": "application/json", "description": "The job event, as JSON"}}}


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


@router.get("/jobs/{job_id}/events", name="job_events", summary="A job's events (Server-Sent Events)",
            responses={**NOT_FOUND, 200: {"description": "One SSE event per job event, until the job ends",
                                          "content": {"text/event-stream": {"schema": SSE_EVENT}}}},
            response_class=EventSourceResponse)
async def job_events(job_id: JobId, request: Request, caller: CompanyDep, ctx: ContextDep) -> EventSourceResponse:
    """Every event of the job so far, then each new one as it is stored, until the job ends."""
    company = caller.company_id
    if await _read_job(ctx, request, company, job_id) is None:
        raise not_found("job", job_id)
    hold = ctx.holds.take(caller.key_id)  # released when the stream ends, or dropped unsent

    async def stream() -> AsyncIterator[dict[str, str]]:
        sent: set[str] = set()
        deadline = time.monotonic() + ctx.settings.api_max_stream_s
        try:
            while time.monotonic() < deadline and not await request.is_disconnected():
                events = await run_in_threadpool(reads.job_events, ctx.store, company, job_id)
                for data in (e for e in events if e["event_id"] not in sent):
                    sent.add(data["event_id"])
                    data = withhold_forgotten_notes(data, lambda entry: ctx.memory.get(company, entry) is not None)
                    yield {"event": data["type"], "id": data["event_id"], "data": json.dumps(data)}
                    if data["type"] in TERMINAL:
                        return
                await asyncio.sleep(0.25)
        finally:
            hold.release()

    return EventSourceResponse(stream(), ping=15)
