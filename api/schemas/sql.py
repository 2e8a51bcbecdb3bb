"""Read-only SQL against the projection store, for operators (the store may be held by this process alone)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, JsonValue

from api.schemas.common import Request


class SqlQuery(Request):
    sql: str = Field(min_length=1, max_length=20_000, description="One read-only statement (SELECT, SHOW, DESCRIBE...).")
    parameters: dict[str, str | int | float] = Field(default_factory=dict, max_length=64,
                                                     description="Values for `{name:Type}` placeholders.")
    max_rows: int = Field(default=1000, ge=1, le=100_000)
    timeout_s: float = Field(default=10.0, gt=0, le=120)


class SqlResult(BaseModel):
    columns: list[str]
    rows: list[list[JsonValue]]
    truncated: bool = Field(description="max_rows rows came back: there may be more.")

    @classmethod
    def of(cls, columns: list[str], rows: list[tuple[Any, ...]], max_rows: int) -> SqlResult:
        return cls(columns=columns, rows=[[_plain(v) for v in row] for row in rows], truncated=len(rows) >= max_rows)


def _plain(value: Any) -> JsonValue:
    """A ClickHouse value as JSON: numbers, strings, booleans and null as they are, lists and maps item by item,
    anything else (times, UUIDs, decimals) as its text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)
