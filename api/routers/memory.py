"""A company's memory entries and sessions: written and deleted as events, read from the views; another
company's entry or session reads (and deletes) exactly like none."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.concurrency import run_in_threadpool

from api import reads
from api.deps import CompanyDep, ContextDep
from api.errors import ApiError, not_found
from api.schemas.common import ERRORS, NOT_FOUND
from api.schemas.jobs import JobSummary
from api.schemas.memory import (
    MemoryDeleted,
    MemoryEntry,
    MemoryList,
    MemoryWrite,
    MemoryWritten,
    SessionClosed,
    SessionOpen,
    SessionOpened,
    SessionPublic,
)
from api.urls import job_url
from context import events as context_events
from core.identifiers import ID_PATTERN

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
                      "finished_at": r["finished_at"] if r["status"] in ("completed", "partially_failed", "failed") else None},
                   url=job_url(request, r["job_id"])) for r in rows])


@router.post("/memory", status_code=202, response_model=MemoryWritten, summary="Write a memory entry")
async def write_memory(body: MemoryWrite, caller: CompanyDep, ctx: ContextDep) -> MemoryWritten:
    """A `memory_written` event; the agents take it into account from their next decision on."""
    try:
        event = context_events.memory_entry(caller.company_id, body.content, ctx.settings.memory_max_entry_chars,
                                            body.kind, body.tags, body.entry_id)
    except context_events.ContextRequestError as exc:
        raise ApiError(422, f"body.{exc.field}: {exc}") from None
    await ctx.publish_context([event])
    return MemoryWritten(entry_id=str(event["entry_id"]))


@router.delete("/memory/{entry_id}", status_code=202, response_model=MemoryDeleted, responses=NOT_FOUND,
               summary="Delete a memory entry")
async def delete_memory(entry_id: Id, caller: CompanyDep, ctx: ContextDep) -> MemoryDeleted:
    """A `memory_deleted` event and a tombstone for the entry's key: no later prompt shows it."""
    if ctx.memory.get(caller.company_id, entry_id) is None:  # the API's own fold: no topic read per request
        raise not_found("memory entry", entry_id)
    event = context_events.deletion(caller.company_id, entry_id)
    await ctx.publish_context([event], tombstones=True)
    return MemoryDeleted(deleted=[entry_id])


@router.delete("/memory", status_code=202, response_model=MemoryDeleted, summary="Forget the company's whole memory")
async def forget_memory(caller: CompanyDep, ctx: ContextDep) -> MemoryDeleted:
    events = context_events.forget(ctx.memory.entries_of(caller.company_id))
    await ctx.publish_context(events, tombstones=True)
    return MemoryDeleted(deleted=[str(e["entry_id"]) for e in events])


@router.post("/sessions", status_code=202, response_model=SessionOpened, summary="Open a session")
async def open_session(body: SessionOpen, caller: CompanyDep, ctx: ContextDep) -> SessionOpened:
    """Jobs naming the session see the results of its earlier jobs, until it is closed (or idle too long)."""
    event = context_events.session_opened(caller.company_id, body.user_ref)
    await ctx.publish_context([event])
    return SessionOpened(session_id=str(event["session_id"]))


@router.post("/sessions/{session_id}/close", status_code=202, response_model=SessionClosed, responses=NOT_FOUND,
             summary="Close a session")
async def close_session(session_id: Id, caller: CompanyDep, ctx: ContextDep) -> SessionClosed:
    if ctx.sessions.get(caller.company_id, session_id) is None:
        raise not_found("session", session_id)
    closed = context_events.session_closed(caller.company_id, session_id)
    await ctx.publish_context([closed])
    return SessionClosed(session_id=session_id)
