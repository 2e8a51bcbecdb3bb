"""A company's memory entries and sessions: what is written, what is read."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import UtcDatetime
from api.schemas.jobs import JobSummary
from core.identifiers import ID_PATTERN


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


class MemoryWrite(BaseModel):
    """A preference or fact for the company's agents to take into account."""

    model_config = ConfigDict(extra="forbid")
    content: str = Field(min_length=1, max_length=100_000, description="The entry's text (the server's limit applies).")
    kind: Literal["preference", "fact"] = "preference"
    tags: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=16)
    entry_id: str | None = Field(default=None, pattern=ID_PATTERN, max_length=128, description="Replace this entry.")


class MemoryWritten(BaseModel):
    entry_id: str


class MemoryDeleted(BaseModel):
    deleted: list[str]


class SessionOpen(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_ref: str | None = Field(default=None, max_length=256)


class SessionOpened(BaseModel):
    session_id: str


class SessionClosed(BaseModel):
    session_id: str
    closed: bool = True
