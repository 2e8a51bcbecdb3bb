"""Dependencies routes declare: the app's context, and the caller's company from its API key (rate-limited)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.context import ApiContext
from api.errors import ApiError
from api.keys import split_key
from api.limits import retry_after

bearer = HTTPBearer(auto_error=False, scheme_name="CompanyKey",
                    description="A company's API key (`cda companies create`): Authorization: Bearer cda_<id>.<secret>")
operator_bearer = HTTPBearer(auto_error=False, scheme_name="OperatorKey",
                             description="The operator key (CDA_API_OPERATOR_KEY).")
_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


async def context(request: Request) -> ApiContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


ContextDep = Annotated[ApiContext, Depends(context)]


@dataclass(frozen=True)
class Caller:
    """Who is calling: every read and write of the request is scoped to this company."""

    company_id: str
    key_id: str


async def caller(ctx: ContextDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> Caller:
    if credentials is None:
        raise ApiError(401, "missing API key: send Authorization: Bearer cda_<id>.<secret>", _UNAUTHORIZED)
    company_id, reason = ctx.keys.check(credentials.credentials)
    if company_id is None:
        raise ApiError(401, reason, _UNAUTHORIZED)
    key_id = split_key(credentials.credentials)[0]  # type: ignore[index]  # checked above
    wait = ctx.limiter.take(key_id)
    if wait:
        raise ApiError(429, f"rate limit of key {key_id}: {ctx.settings.api_rate_per_s:g} requests/s "
                            f"(burst {ctx.settings.api_rate_burst})", {"Retry-After": retry_after(wait)})
    return Caller(company_id, key_id)


CompanyDep = Annotated[Caller, Depends(caller)]


def same_company(caller: Caller, named: str | None) -> None:
    """A body may name its company (the seed's `company_id`); it must be the key's own."""
    if named is not None and named != caller.company_id:
        raise ApiError(403, f"body.company_id: this key belongs to company {caller.company_id!r}, not {named!r}")


async def operator(ctx: ContextDep,
             credentials: Annotated[HTTPAuthorizationCredentials | None, Security(operator_bearer)]) -> None:
    configured = ctx.settings.api_operator_key
    if configured is None or not configured.get_secret_value():
        raise ApiError(401, "no operator key is configured (CDA_API_OPERATOR_KEY)", _UNAUTHORIZED)
    given = credentials.credentials if credentials is not None else ""
    if not given or not hmac.compare_digest(given.encode(), configured.get_secret_value().encode()):
        raise ApiError(401, "operator key required", _UNAUTHORIZED)


OperatorDep = Annotated[None, Depends(operator)]
