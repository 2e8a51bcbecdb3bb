"""A company's tools: registered as JSON or imported from an OpenAPI 3 document (all checked before any event),
listed as the agents see them, removed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.concurrency import run_in_threadpool

from api.deps import CompanyDep, ContextDep, same_company
from api.errors import ApiError, not_found
from api.schemas.common import ERRORS, NOT_FOUND, OTHER_COMPANY
from api.schemas.tools import ToolList, ToolPublic, ToolRemoved, ToolsRegister, ToolsRegistered
from core.identifiers import ID_PATTERN
from streams.openapi import tools_from_openapi
from streams.openapi_document import OpenApiError
from streams.tools import Tool
from topics.errors import EventValidationError
from topics.events import Event

router = APIRouter(prefix="/company-automation", tags=["tools"], responses=ERRORS)
# the API's field names for the event's, so a contract error names what the caller sent
_FIELD = {"tool_name": "name", "parameters_schema_json": "parameters"}


def _tools(body: ToolsRegister, company_id: str) -> tuple[list[Tool], str]:
    if body.tools is not None:
        return [Tool(company_id=company_id, name=t.name, description=t.description, parameters=t.parameters,
                     method=t.method, url=t.url, headers=t.headers, secret_ref=t.secret_ref, timeout_ms=t.timeout_ms)
                for t in body.tools], "body.tools"
    try:
        tools = tools_from_openapi(body.openapi or {}, company_id, base_url=body.base_url, secret_ref=body.secret_ref,
                                   timeout_ms=body.timeout_ms)
    except OpenApiError as exc:
        raise ApiError(422, f"body.openapi: {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:  # a structure no OpenAPI document has
        raise ApiError(422, f"body.openapi: not an OpenAPI 3 document ({type(exc).__name__}: {exc})") from None
    if not tools:
        raise ApiError(422, "body.openapi: the document has no operations to import")
    return tools, "body.openapi"


@router.post("/register-tools", status_code=202, response_model=ToolsRegistered,
             responses=OTHER_COMPANY, summary="Register or import tools")
async def register_tools(body: ToolsRegister, caller: CompanyDep, ctx: ContextDep) -> ToolsRegistered:
    """Each tool becomes a `tool_registered` event (replacing a tool of the same name); one bad tool: none is produced."""
    same_company(caller, body.company_id)
    tools, where = await run_in_threadpool(_tools, body, caller.company_id)  # an import is CPU work: off the loop
    events = []
    for i, tool in enumerate(tools):
        try:
            events.append(Event.new("tool_registered", caller.company_id, **tool.to_fields()))
        except EventValidationError as exc:
            head, dot, rest = exc.path.partition(".")
            field = _FIELD.get(head, head) + dot + rest
            raise ApiError(422, f"{where}[{i}].{field} ({tool.name}): {exc.message}") from None
        except (TypeError, ValueError) as exc:
            raise ApiError(422, f"{where}[{i}] ({tool.name}): {exc}") from None
    await ctx.producer.send(events)
    for event in events:
        ctx.apply_tool_event(event)
    return ToolsRegistered(registered=[t.name for t in tools])


def _public(tool: Tool) -> ToolPublic:
    return ToolPublic(name=tool.name, description=tool.description, parameters=dict(tool.parameters), method=tool.method,
                      url=tool.url, headers=dict(tool.headers), secret_ref=tool.secret_ref, timeout_ms=tool.timeout_ms)


@router.get("/tools", response_model=ToolList, summary="The company's tools")
async def list_tools(caller: CompanyDep, ctx: ContextDep) -> ToolList:
    return ToolList(tools=[_public(t) for _, t in sorted(ctx.tools_of(caller.company_id).items())])


@router.delete("/tools/{name}", status_code=202, response_model=ToolRemoved, responses=NOT_FOUND, summary="Remove a tool")
async def remove_tool(name: Annotated[str, Path(pattern=ID_PATTERN, max_length=128)], caller: CompanyDep,
                      ctx: ContextDep) -> ToolRemoved:
    if name not in ctx.tools_of(caller.company_id):
        raise not_found("tool", name)
    event = Event.new("tool_removed", caller.company_id, tool_name=name, reason="removed through the API")
    await ctx.producer.send([event])
    ctx.apply_tool_event(event)
    return ToolRemoved(removed=name)
