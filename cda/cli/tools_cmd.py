"""`cda tools register | import | list | remove`: a company's tools are `company_tools` events.

Every tool is checked by the event contract (identifier name, http(s) URL, method, a JSON Schema that
compiles, secret *references* only) before the first event is produced, so a bad file or document
registers nothing rather than half of itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Column, Table

from cda.cli.common import err, failing_clearly, out, produce, settings
from core.settings import Settings
from streams.openapi import tools_from_openapi
from streams.openapi_document import load_document
from streams.tools import Tool, ToolRegistry
from topics.errors import EventValidationError
from topics.events import Event
from topics.reads import fold_topic

app = typer.Typer(help="A company's tools: register them, import them from OpenAPI, list, remove.", no_args_is_help=True)
TOPIC = "company_tools"
FILE_FIELDS = {"name": str, "description": str, "parameters": dict, "method": str, "url": str, "headers": dict,
               "secret_ref": str, "timeout_ms": int}
REQUIRED_FIELDS = ("name", "description", "parameters", "url")

CompanyOpt = typer.Option(..., "--company", help="The company the tools belong to.")


# -- reading what the user gives ---------------------------------------------------------------------
def tools_from_file(path: Path, company_id: str) -> list[Tool]:
    """The tools of a JSON list file; the first problem names the entry and the field."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a JSON list of tools, got {type(entries).__name__}")
    return [_tool(entry, f"{path}[{i}]", company_id) for i, entry in enumerate(entries)]


def _tool(entry: Any, where: str, company_id: str) -> Tool:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object, got {type(entry).__name__}")
    unknown = sorted(set(entry) - set(FILE_FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)} (expected {', '.join(FILE_FIELDS)})")
    for name in REQUIRED_FIELDS:
        if name not in entry:
            raise ValueError(f"{where}.{name}: missing")
    for name, kind in FILE_FIELDS.items():
        value = entry.get(name)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise ValueError(f"{where}.{name}: expected {kind.__name__}, got {type(value).__name__}")
    return Tool(company_id=company_id, name=entry["name"], description=entry["description"],
                parameters=entry["parameters"], method=entry.get("method", "POST").upper(), url=entry["url"],
                headers=entry.get("headers") or {}, secret_ref=entry.get("secret_ref"),
                timeout_ms=entry.get("timeout_ms", 10_000))


def registration_events(tools: list[Tool]) -> list[Event]:
    """Every tool as a checked `tool_registered` event, or `ValueError` naming the tool and field at fault."""
    events = []
    for tool in tools:
        try:
            events.append(Event.new("tool_registered", tool.company_id, **tool.to_fields()))
        except EventValidationError as exc:
            raise ValueError(f"tool {tool.name!r}: {exc.path}: {exc.message}") from None
    return events


# -- the topic -----------------------------------------------------------------------------------------
def read_registry(config: Settings) -> ToolRegistry:
    """Today's tools of every company: `company_tools` folded from its beginning to its current end."""
    registry = ToolRegistry()
    fold_topic(config, TOPIC, registry.apply, "cda-cli")
    return registry




def _show(tools: list[Tool], title: str | None = None) -> None:
    table = Table("tool", "method", Column("url", no_wrap=True), "arguments", "secret", "timeout ms", "description",
                  title=title)
    for tool in tools:
        args = tool.spec().signature().split(" - ", 1)[0].removeprefix(tool.name)
        table.add_row(tool.name, tool.method, tool.url, args, tool.secret_ref or "", str(tool.timeout_ms), tool.description)
    out.print(table)


# -- commands ------------------------------------------------------------------------------------------
@app.command("register")
def register(company: str = CompanyOpt,
             file: Path = typer.Option(..., "--file", "-f", help="JSON list of tools: name, description, parameters "
                                       "(a JSON Schema object), method, url, headers?, secret_ref?, timeout_ms?")) -> None:
    """Register (or replace) tools from a JSON file; all are checked before any is produced."""
    with failing_clearly():
        events = registration_events(tools_from_file(file, company))
        produce(settings(), events)
    err.print(f"registered {len(events)} tool(s) for {company}")


@app.command("import")
def import_(company: str = CompanyOpt,
            openapi: str = typer.Option(..., "--openapi", help="OpenAPI 3 document: a file or an http(s) URL."),
            secret_ref: str | None = typer.Option(None, "--secret-ref", help="Credential reference for every tool "
                                                  "(env:NAME or file:/path); never the credential itself."),
            base_url: str | None = typer.Option(None, "--base-url", help="The API's base URL, instead of the document's servers."),
            timeout_ms: int = typer.Option(10_000, "--timeout-ms", help="Bound on one call of each tool."),
            dry_run: bool = typer.Option(False, "--dry-run", help="Show the tools; produce nothing.")) -> None:
    """Each operation of an OpenAPI 3 document becomes a tool (operationId -> name, summary -> description,
    parameters and JSON body -> arguments, server + path + method -> the call)."""
    with failing_clearly():
        document, source_url = load_document(openapi)
        tools = tools_from_openapi(document, company, source_url=source_url, base_url=base_url,
                                   secret_ref=secret_ref, timeout_ms=timeout_ms)
        events = registration_events(tools)
        if not dry_run:
            produce(settings(), events)
    _show(tools)
    err.print(f"dry run: {len(tools)} tool(s) read, nothing produced" if dry_run
              else f"imported {len(tools)} tool(s) for {company}")


@app.command("list")
def list_(company: str = CompanyOpt,
          as_json: bool = typer.Option(False, "--json", help="One JSON object per tool instead of a table.")) -> None:
    """The company's tools as the agents see them (the latest fact per tool on `company_tools`)."""
    with failing_clearly():
        tools = sorted(read_registry(settings()).tools_of(company).values(), key=lambda t: t.name)
    if as_json:
        for tool in tools:
            out.print(json.dumps({"company_id": tool.company_id, **tool.to_fields()}), markup=False)
    else:
        _show(tools, title=f"{company}'s tools")
    err.print(f"{len(tools)} tool(s) for {company}")


@app.command("remove")
def remove(name: str = typer.Argument(..., help="The tool's name."), company: str = CompanyOpt,
           reason: str | None = typer.Option(None, "--reason", help="Why, for people.")) -> None:
    """Remove one of the company's tools: its jobs can no longer call it."""
    with failing_clearly():
        config = settings()
        if read_registry(config).get(company, name) is None:
            raise ValueError(f"{company} has no tool named {name!r}")
        try:
            event = Event.new("tool_removed", company, tool_name=name, reason=reason)
        except EventValidationError as exc:
            raise ValueError(f"{exc.path}: {exc.message}") from None
        produce(config, [event])
    err.print(f"removed {name} from {company}'s tools")
