"""A company's memory entries and sessions, read-only here."""

from __future__ import annotations

from pydantic import BaseModel

from streams.api.schemas.common import UtcDatetime
from streams.api.schemas.jobs import JobSummary


class MemoryEntry(BaseModel):
    entry_id: str
    session_id: str | None = None
    kind: str
    content: str
    tags: list[str]
    source_job_id: str | None = None
    updated_at: UtcDatetime


class MemoryList(BaseModel):
    entries: list[MemoryEntry]


class SessionPublic(BaseModel):
    session_id: str
    jobs: list[JobSummary]
