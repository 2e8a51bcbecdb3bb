"""A company's memory entries and sessions (read-only): another company's reads exactly like none."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.concurrency import run_in_threadpool

from streams.api import reads
from streams.api.deps import CompanyDep, ContextDep
from streams.api.errors import not_found
from streams.api.schemas.common import ERRORS, NOT_FOUND
from streams.api.schemas.jobs import JobSummary
from streams.api.schemas.memory import MemoryEntry, MemoryList, SessionPublic
from streams.api.urls import job_url
from topics.identifiers import ID_PATTERN

router = APIRouter(prefix="/company-automation", tags=["memory"], responses=ERRORS)
Id = Annotated[str, Path(pattern=ID_PATTERN, max_length=128)]


@router.get("/memory", response_model=MemoryList, summary="The company's memory entries")
async def list_memory(caller: CompanyDep, ctx: ContextDep) -> MemoryList:
    rows = await run_in_threadpool(reads.memory_entries, ctx.store, caller.company_id)
    return MemoryList(entries=[MemoryEntry(**r) for r in rows])


@router.get("/memory/{entry_id}", response_model=MemoryEntry, responses=NOT_FOUND, summary="One memory entry")
async def get_memory(entry_id: Id, caller: CompanyDep, ctx: ContextDep) -> MemoryEntry:
    rows = await run_in_threadpool(reads.memory_entries, ctx.store, caller.company_id, entry_id)
    if not rows:
        raise not_found("memory entry", entry_id)
    return MemoryEntry(**rows[0])


@router.get("/sessions/{session_id}", response_model=SessionPublic, responses=NOT_FOUND, summary="A session's jobs")
async def get_session(session_id: Id, request: Request, caller: CompanyDep, ctx: ContextDep) -> SessionPublic:
    rows, _ = await run_in_threadpool(reads.jobs_page, ctx.store, caller.company_id, status=None, session_id=session_id,
                                      since=None, limit=500, offset=0, order="oldest")
    if not rows:
        raise not_found("session", session_id)
    return SessionPublic(session_id=session_id, jobs=[
        JobSummary(**{**r, "session_id": r["session_id"] or None,
                      "finished_at": r["finished_at"] if r["status"] in ("completed", "failed") else None},
                   url=job_url(request, r["job_id"])) for r in rows])
