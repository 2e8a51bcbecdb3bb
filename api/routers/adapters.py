"""A company's adapters: versions with metrics, the one served, refusals; switching version is an event."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool

from api import reads
from api.deps import CompanyDep, ContextDep
from api.errors import not_found
from api.routers.training import _real
from api.schemas.adapters import ActivationAccepted, AdapterList, AdapterPublic, RefusalPublic
from api.schemas.common import ERRORS, NOT_FOUND
from core.identifiers import ID_PATTERN
from topics.events import Event

router = APIRouter(prefix="/company-automation", tags=["adapters"], responses=ERRORS)


@router.get("/adapters", response_model=AdapterList, summary="The company's adapter versions")
async def list_adapters(caller: CompanyDep, ctx: ContextDep) -> AdapterList:
    """Active is what inference serves (the company's latest `adapter_activated`), not the newest version."""
    rows = await run_in_threadpool(reads.adapter_runs, ctx.store, caller.company_id)
    versions = [AdapterPublic(version=r["version"], request_id=r["request_id"], status=r["status"], active=bool(r["active"]),
                              rank=r["rank"], metrics=dict(r["eval_metrics"] or {}), created_at=_real(r["created_at"]),
                              ready_at=_real(r["ready_at"]), activated_at=_real(r["activated_at"]))
                for r in rows if r["version"]]
    refusals = [RefusalPublic(version=r["version"], reason=r["reason"], error_kind=r["error_kind"])
                for r in rows if r["status"] == "refused"]
    active = next((v.version for v in versions if v.active), None)
    return AdapterList(active=active, versions=versions, refusals=refusals)


@router.post("/adapters/{version}/activate", status_code=202, response_model=ActivationAccepted, responses=NOT_FOUND,
             summary="Serve a stored version (rollback)")
async def activate(version: Annotated[str, Path(pattern=ID_PATTERN, max_length=128)], caller: CompanyDep,
                   ctx: ContextDep) -> ActivationAccepted:
    """Announce the version again (`lora_adapter_ready`, the user's choice: no gate); inference checks and serves it."""
    ready = await run_in_threadpool(reads.ready_version, ctx.store, caller.company_id, version)
    if ready is None:
        raise not_found("adapter version", version)
    event = Event.new("lora_adapter_ready", caller.company_id, request_id=ready["request_id"],
                      adapter_name=ready["adapter_name"], version=version, uri=ready["uri"], base_model=ready["base_model"],
                      rank=int(ready["rank"] or 0), dataset_hash=ready["dataset_hash"],
                      metrics={k: float(v) for k, v in dict(ready["metrics"]).items()})
    await ctx.producer.send([event])
    return ActivationAccepted(version=version, status="requested")
