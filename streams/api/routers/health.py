"""Liveness (the process answers) and readiness (what the API needs answers; what jobs need is reported too)."""

from __future__ import annotations

import time
from typing import Any

import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from streams.api.deps import ContextDep
from streams.api.schemas.health import Live, Ready
from topics.connection import admin_client, cluster_metadata

router = APIRouter(prefix="/health", tags=["health"])
_CACHE: dict[int, tuple[float, dict[str, str]]] = {}
CACHE_S = 2.0


@router.get("/live", response_model=Live)
async def live() -> Live:
    return Live(status="ok")


def _agents(ctx: Any) -> str:
    """ok when the agents' consumer group has members (someone turns requests into jobs)."""
    group = f"{ctx.settings.topic_prefix}{ctx.settings.agents_group}"
    future = admin_client(ctx.settings).describe_consumer_groups([group], request_timeout=2)[group]
    members = future.result(timeout=3).members
    return "ok" if members else "down: no agents in consumer group " + group


def _check(ctx: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    probes = {
        "broker": lambda: cluster_metadata(ctx.settings) and "ok",
        "store": lambda: ctx.store.query("SELECT 1") and "ok",
        "inference": lambda: "ok" if httpx.get(f"{ctx.settings.inference_url}/health/ready", timeout=2).status_code == 200
        else "down: the gateway is not ready",
        "agents": lambda: _agents(ctx),
        "followers": lambda: "ok" if ctx.followers_healthy else "down: a keys or tools follower stopped",
    }
    for name, probe in probes.items():
        try:
            out[name] = str(probe())
        except Exception as exc:  # noqa: BLE001 - any failure is a component that is down, named in the answer
            out[name] = f"down: {type(exc).__name__}: {str(exc)[:200]}"
    return out


@router.get("/ready", response_model=Ready, responses={503: {"model": Ready, "description": "Not ready"}})
async def ready(ctx: ContextDep) -> Any:
    """Ready when the broker, the store and the keys/tools tables answer: then requests are taken. The inference
    gateway and the agents are reported too; without them jobs wait (queued), they are not refused."""
    cached = _CACHE.get(id(ctx))
    if cached is None or time.monotonic() - cached[0] > CACHE_S:
        cached = (time.monotonic(), await run_in_threadpool(_check, ctx))
        _CACHE[id(ctx)] = cached
    components = cached[1]
    is_ready = all(components[c] == "ok" for c in ("broker", "store", "followers"))
    body = Ready(ready=is_ready, components=components)
    return body if is_ready else JSONResponse(body.model_dump(), 503)
