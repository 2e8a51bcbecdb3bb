"""What every route shares: the error body, identifiers, and the strict request base class."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from core.identifiers import ID_PATTERN


def _no_double_dot(value: str) -> str:
    if ".." in value:
        raise ValueError("an identifier holds no '..'")
    return value


Identifier = Annotated[str, Field(pattern=ID_PATTERN, min_length=1, max_length=128,
                                  description="Letters, digits, '_', '.', '-'; a letter or digit first; no '..'."),
                       AfterValidator(_no_double_dot)]


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


# every time the API answers carries its zone (ClickHouse hands back naive UTC): RFC 3339 date-time
UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


class Request(BaseModel):
    """A request body: unknown fields and wrong types are refused (422 naming the field), never coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


def exactly_one(model: BaseModel, *names: str, why: str) -> None:
    """For a model validator: refuse (with `why`) a body that gives none or more than one of the fields `names`."""
    if sum(getattr(model, name) is not None for name in names) != 1:
        raise ValueError(why)


class FieldProblem(BaseModel):
    field: str = Field(description="Where the problem is, e.g. body.data or query.limit.")
    message: str
    type: str


class ErrorBody(BaseModel):
    """Every answer that is not a success."""

    error: str = Field(description="The reason in words, naming the field at fault when there is one.")
    detail: list[FieldProblem] = Field(default_factory=list)


ERRORS = {status: {"model": ErrorBody, "description": text} for status, text in (
    (400, "A body that is not JSON this server reads"),
    (401, "No API key, or the key of an unknown or revoked company"),
    (413, "Request body too large"),
    (422, "Invalid request (the field is named)"),
    (429, "Too many requests for this key (see Retry-After)"),
    (503, "The broker or the store is unavailable for now (see Retry-After)"),
)}
NOT_FOUND = {404: {"model": ErrorBody, "description": "No such resource for this company"}}
OTHER_COMPANY = {403: {"model": ErrorBody, "description": "The body names another company than the key's"}}
REUSED_KEY = {409: {"model": ErrorBody, "description": "The Idempotency-Key (or request_id) was used before with "
                                                        "another body"}}
