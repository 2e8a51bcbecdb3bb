"""Liveness (the process answers) and readiness (what the API needs answers; what jobs need is reported too)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ContextDep
from api.readiness import NEEDED
from api.schemas.health import Live, Ready

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", response_model=Live)
async def live() -> Live:
    return Live(status="ok")


@router.get("/ready", response_model=Ready, responses={503: {"model": Ready, "description": "Not ready"}})
async def ready(ctx: ContextDep) -> Any:
    """Ready when the broker, the store and the keys/tools tables answer: then requests are taken. The inference
    gateway and the agents are reported too; without them jobs wait (queued), they are not refused."""
    components = await ctx.readiness.components()
    is_ready = all(components[c] == "ok" for c in NEEDED)
    body = Ready(ready=is_ready, components=components)
    return body if is_ready else JSONResponse(body.model_dump(), 503)
