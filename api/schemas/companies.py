"""Companies and their keys (operator routes): a key is shown once, in the answer that made it."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas.common import Identifier, Request


class CompanyCreate(Request):
    company_id: Identifier


class KeyIssued(BaseModel):
    company_id: str
    key_id: str
    api_key: str = Field(description="Shown once: only a salted hash of it is kept.")


class KeyOwner(BaseModel):
    company_id: str
    key_id: str


class KeysRevoked(BaseModel):
    company_id: str
    revoked: list[str]


class CompanyForgotten(BaseModel):
    """What deleting a company did: counts and names, never content; `remains` says what this cannot reach."""

    company_id: str
    keys_revoked: list[str]
    ended: dict[str, int] = Field(description="Events produced to end what was live, by type.")
    tombstones: dict[str, int] = Field(description="Record keys tombstoned, by compacted topic.")
    folders_removed: list[str]
    rows_deleted_from: list[str] = Field(description="ClickHouse tables its rows were deleted from.")
    remains: list[str]
