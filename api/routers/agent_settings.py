"""A company's own agent settings: read them, and change what the operator's policy lets a company change itself
(default `use_adapter`, concurrency, its own hosts and secret references, a job deadline no longer than the
operator's). Each change is an `agent_configured`
event, as `cda agents configure` makes."""

from __future__ import annotations

from fastapi import APIRouter

from api.agent_policy import entries, env_prefix, host_refusal, port_refusal, secret_refusal
from api.deps import CompanyDep, ContextDep
from api.errors import ApiError
from api.schemas.agent_settings import AgentSettingsPublic, AgentSettingsUpdate
from api.schemas.common import ERRORS
from core.settings import Settings
from streams.agent_settings import AgentSettings
from topics.events import Event

router = APIRouter(prefix="/company-automation", tags=["agents"], responses=ERRORS)


def _public(settings: Settings, current: AgentSettings) -> AgentSettingsPublic:
    policy: dict[str, list[str] | int] = {
        "networks": entries(settings.api_company_networks), "host_suffixes": entries(settings.api_company_host_suffixes),
        "secret_prefixes": [f"env:{env_prefix(current.company_id)}",
                            f"file:{settings.home / 'secrets' / current.company_id}/"],
        "max_concurrency": settings.api_company_max_concurrency}
    return AgentSettingsPublic(use_adapter=current.use_adapter, concurrency=current.concurrency,
                               step_limit=current.step_limit, allowed_hosts=sorted(current.allowed_hosts),
                               allowed_secrets=sorted(current.allowed_secrets),
                               job_deadline_s=round(current.job_deadline_s or settings.agent_job_deadline_s),
                               secret_hosts={r: sorted(h) for r, h in sorted(current.secret_hosts.items())},
                               policy=policy)


@router.get("/agent-settings", response_model=AgentSettingsPublic, summary="The company's agent settings")
async def get_agent_settings(caller: CompanyDep, ctx: ContextDep) -> AgentSettingsPublic:
    return _public(ctx.settings, ctx.agent_settings(caller.company_id))


@router.put("/agent-settings", response_model=AgentSettingsPublic, summary="Change the company's agent settings")
async def put_agent_settings(body: AgentSettingsUpdate, caller: CompanyDep, ctx: ContextDep) -> AgentSettingsPublic:
    """Fields left out keep their value. A host or secret outside the policy (and not granted already) is a 422
    naming it; nothing is produced then."""
    current = ctx.agent_settings(caller.company_id)
    if body.concurrency is not None and body.concurrency > max(ctx.settings.api_company_max_concurrency,
                                                                current.concurrency):
        raise ApiError(422, f"body.concurrency: at most {ctx.settings.api_company_max_concurrency}")
    if body.job_deadline_s is not None and body.job_deadline_s > max(ctx.settings.agent_job_deadline_s,
                                                                      current.job_deadline_s or 0):
        raise ApiError(422, f"body.job_deadline_s: at most {ctx.settings.agent_job_deadline_s:.0f}")
    for i, host in enumerate(body.allowed_hosts or ()):
        reason = None if host in current.allowed_hosts else host_refusal(ctx.settings, host)
        if reason:
            raise ApiError(422, f"body.allowed_hosts[{i}]: {reason}")
    for i, ref in enumerate(body.allowed_secrets or ()):
        reason = None if ref in current.allowed_secrets else secret_refusal(ctx.settings, caller.company_id, ref)
        if reason:
            raise ApiError(422, f"body.allowed_secrets[{i}]: {reason}")
    secrets = current.allowed_secrets if body.allowed_secrets is None else set(body.allowed_secrets)
    bound = ({r: set(h) for r, h in current.secret_hosts.items() if r in secrets} if body.secret_hosts is None
             else {r: set(h) for r, h in body.secret_hosts.items()})
    for ref, hosts in bound.items():
        if ref not in secrets:
            raise ApiError(422, f"body.secret_hosts[{ref!r}]: names a secret that allowed_secrets does not hold")
        for i, host in enumerate(sorted(hosts)):
            if (reason := port_refusal(host)) is not None:
                raise ApiError(422, f"body.secret_hosts[{ref!r}][{i}]: {reason}")
    wanted = {"use_adapter": current.use_adapter if body.use_adapter is None else body.use_adapter,
              "step_limit": current.step_limit,
              "concurrency": current.concurrency if body.concurrency is None else body.concurrency,
              "allowed_hosts": sorted(current.allowed_hosts if body.allowed_hosts is None else set(body.allowed_hosts)),
              "allowed_secrets": sorted(current.allowed_secrets if body.allowed_secrets is None
                                        else set(body.allowed_secrets)),
              "job_deadline_s": current.job_deadline_s if body.job_deadline_s is None else body.job_deadline_s,
              "secret_hosts": {r: sorted(h) for r, h in sorted(bound.items())}}
    event = Event.new("agent_configured", caller.company_id, **wanted)
    await ctx.producer.send([event])
    ctx.apply_agent_event(event)
    return _public(ctx.settings, ctx.agent_settings(caller.company_id))
