"""The facts a company writes about its context, built and checked in one place for the CLI and the API:
memory entries (write, delete, forget all) and sessions (open, close). Deletion is a `memory_deleted` event
followed by a tombstone for the entry's key, so the compacted topic eventually holds nothing of it."""

from __future__ import annotations

import json
import uuid
from collections import Counter

from context.memory import AUTOMATION, KINDS, PREFERENCE, SESSION, MemoryEntry
from core.errors import CdaError
from topics.events import Event
from topics.identifiers import check_identifier


class ContextRequestError(CdaError, ValueError):
    """A memory or session request that cannot be honoured; `field` names what is at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def new_entry_id() -> str:
    return f"mem-{uuid.uuid4().hex[:16]}"


def new_session_id() -> str:
    return f"ses-{uuid.uuid4().hex[:16]}"


def memory_entry(company_id: str, content: str, max_chars: int, kind: str = PREFERENCE,
                 tags: list[str] | None = None, entry_id: str | None = None, session_id: str | None = None) -> Event:
    """A `memory_written` event, or `ContextRequestError` for empty, oversize or malformed input."""
    check_identifier(company_id, "company")
    text = content.strip()
    if not text:
        raise ContextRequestError("content", "a memory entry needs some text")
    if len(text) > max_chars:
        raise ContextRequestError("content", f"a memory entry holds at most {max_chars} characters, not {len(text)}")
    if kind not in KINDS:
        raise ContextRequestError("kind", f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    entry_id = entry_id or new_entry_id()
    try:
        check_identifier(entry_id, "entry_id")
    except ValueError as exc:
        raise ContextRequestError("entry_id", str(exc)) from None
    return Event.new("memory_written", company_id, entry_id=entry_id, kind=kind, content=text,
                     tags=[str(t) for t in tags or []], session_id=session_id)


def deletion(company_id: str, entry_id: str, reason: str = "deleted by the company") -> Event:
    return Event.new("memory_deleted", company_id, entry_id=entry_id, reason=reason)


def retention(entries: list[MemoryEntry], kept: int, open_sessions: set[str] | frozenset[str] = frozenset()
              ) -> list[Event]:
    """A `memory_deleted` for each automation entry older than the company's latest `kept` (oldest first); the
    results of a session still open are its jobs' `Earlier:` lines, and stay until it closes."""
    history = [e for e in entries if e.kind == AUTOMATION and e.session_id not in open_sessions]
    return [Event.new("memory_deleted", e.company_id, event_id=str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                                             f"retention/{e.company_id}/{e.entry_id}")),
                      entry_id=e.entry_id, reason=f"retention: older than the latest {kept} automation entries")
            for e in history[:max(0, len(history) - kept)]]


def session_fold(company_id: str, session_id: str, results: list[MemoryEntry]) -> tuple[Event, list[Event]]:
    """A closed session's results folded: one `session` entry with what its jobs did (jobs, units by status,
    calls by tool, first and last use; no argument or answer values), and a `memory_deleted` per result. Ids are
    derived from the session, so two workers folding it write the same facts."""
    records = [r.automation or {} for r in results]
    summary = {"session_id": session_id, "jobs": len({r.source_job_id for r in results}), "units": len(results),
               "by_status": dict(Counter(str(r.get("status", "")) for r in records)),
               "calls_by_tool": dict(Counter(str(r["tool"]) for r in records if r.get("tool"))),
               "first_ms": min((r.written_ms for r in results), default=0),
               "last_ms": max((r.written_ms for r in results), default=0)}
    entry_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"session-summary/{company_id}/{session_id}"))
    folded = Event.new("memory_written", company_id, event_id=entry_id, entry_id=entry_id, kind=SESSION,
                       content=json.dumps(summary, sort_keys=True, separators=(",", ":")), tags=["session"],
                       session_id=session_id)
    deletions = [Event.new("memory_deleted", company_id, event_id=str(uuid.uuid5(
                     uuid.NAMESPACE_URL, f"session-fold/{company_id}/{r.entry_id}")),
                           entry_id=r.entry_id, reason=f"session {session_id} closed: folded to entry {entry_id}")
                 for r in results]
    return folded, deletions


def forget(entries: list[MemoryEntry], reason: str = "the company's memory was forgotten") -> list[Event]:
    """One `memory_deleted` per entry the company has."""
    return [deletion(e.company_id, e.entry_id, reason) for e in entries]


def session_opened(company_id: str, user_ref: str | None = None, session_id: str | None = None) -> Event:
    check_identifier(company_id, "company")
    return Event.new("session_opened", company_id, session_id=session_id or new_session_id(), user_ref=user_ref,
                     attributes={})


def session_closed(company_id: str, session_id: str, reason: str = "closed by request") -> Event:
    return Event.new("session_closed", company_id, session_id=session_id, reason=reason)
