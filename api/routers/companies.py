"""Operator routes: companies and their keys (the operator key from settings). A key is shown once."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool

from api.company_deletion import forget_company
from api.deps import ContextDep, OperatorDep
from api.errors import ApiError, not_found
from api.keys import issue_key, revocation
from api.schemas.common import ERRORS, NOT_FOUND, ErrorBody
from api.schemas.companies import CompanyCreate, CompanyForgotten, KeyIssued, KeysRevoked
from context import events as context_events
from core.identifiers import ID_PATTERN
from topics.events import Event

router = APIRouter(prefix="/admin/companies", tags=["operator"], responses=ERRORS)
CompanyId = Annotated[str, Path(pattern=ID_PATTERN, max_length=128)]


@router.post("", status_code=201, response_model=KeyIssued,
             responses={409: {"model": ErrorBody, "description": "The company exists"}})
async def create_company(body: CompanyCreate, _: OperatorDep, ctx: ContextDep) -> KeyIssued:
    if body.company_id in ctx.keys.companies():
        raise ApiError(409, f"company {body.company_id!r} exists; rotate its key instead")
    issued = issue_key(body.company_id)
    await ctx.producer.send([issued.event])
    ctx.keys.apply(issued.event)
    return KeyIssued(company_id=body.company_id, key_id=str(issued.event["key_id"]), api_key=issued.key)


@router.post("/{company_id}/rotate-key", status_code=201, response_model=KeyIssued, responses=NOT_FOUND)
async def rotate_key(company_id: CompanyId, _: OperatorDep, ctx: ContextDep) -> KeyIssued:
    """A new key; every key the company had is revoked."""
    if company_id not in ctx.keys.companies():
        raise not_found("company", company_id)
    old = ctx.keys.active_keys(company_id)
    issued = issue_key(company_id, replaces=old)
    events = [issued.event, *(revocation(company_id, k, "rotated") for k in old)]
    await ctx.producer.send(events)
    for event in events:
        ctx.keys.apply(event)
    return KeyIssued(company_id=company_id, key_id=str(issued.event["key_id"]), api_key=issued.key)


@router.post("/{company_id}/revoke-key", response_model=KeysRevoked, responses=NOT_FOUND)
async def revoke_keys(company_id: CompanyId, _: OperatorDep, ctx: ContextDep) -> KeysRevoked:
    """Every key of the company is refused from now on."""
    if company_id not in ctx.keys.companies():
        raise not_found("company", company_id)
    old = ctx.keys.active_keys(company_id)
    events = [revocation(company_id, k, "revoked by the operator") for k in old]
    await ctx.producer.send(events)
    for event in events:
        ctx.keys.apply(event)
    return KeysRevoked(company_id=company_id, revoked=old)


@router.delete("/{company_id}", response_model=CompanyForgotten, responses=NOT_FOUND,
               summary="Delete a company: keys, tools, settings, memory, sessions, adapters, files, rows")
async def delete_company(company_id: CompanyId, _: OperatorDep, ctx: ContextDep) -> CompanyForgotten:
    """Everything of the company this deployment can reach is deleted (`api.company_deletion`); the answer
    lists what was done and what remains (the non-compacted history, until its retention)."""
    if company_id not in ctx.keys.companies():
        raise not_found("company", company_id)
    done = await run_in_threadpool(forget_company, ctx.settings, ctx.store, company_id)
    for key_id in done.keys_revoked:
        ctx.keys.apply(revocation(company_id, key_id, "company deleted"))
    for tool in list(ctx.tools_of(company_id)):
        ctx.apply_tool_event(Event.new("tool_removed", company_id, tool_name=tool))
    ctx.apply_context_events(context_events.forget(ctx.memory.entries_of(company_id), "the company was deleted"))
    return CompanyForgotten(**asdict(done))
