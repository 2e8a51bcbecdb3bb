"""The gateway's completion, on the wire: one schema for what the gateway answers and what the client reads."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ToolCallPublic(BaseModel):
    valid: bool
    arguments: dict[str, Any] | None
    error: str | None


class CompletionPublic(BaseModel):
    company_id: str
    model: str
    adapter_version: str | None
    used_base: bool
    text: str
    finish_reason: str
    latency_ms: float
    tool_call: ToolCallPublic | None = None
