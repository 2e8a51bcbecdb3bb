"""A company's adapter versions, which one is served, refusals, and switching version (rollback)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas.common import UtcDatetime


class AdapterPublic(BaseModel):
    version: str
    request_id: str
    status: str
    active: bool = Field(description="The version inference serves (the latest adapter_activated).")
    rank: int | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    created_at: UtcDatetime | None = None
    ready_at: UtcDatetime | None = None
    activated_at: UtcDatetime | None = None


class RefusalPublic(BaseModel):
    version: str
    reason: str
    error_kind: str


class AdapterList(BaseModel):
    active: str | None = Field(description="The version served now; None: the base model.")
    versions: list[AdapterPublic]
    refusals: list[RefusalPublic]


class ActivationAccepted(BaseModel):
    version: str
    status: str = Field(description="'requested': inference checks and activates it; GET adapters shows it active then.")
