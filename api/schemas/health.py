"""Liveness and readiness."""

from __future__ import annotations

from pydantic import BaseModel


class Live(BaseModel):
    status: str


class Ready(BaseModel):
    ready: bool
    components: dict[str, str]
