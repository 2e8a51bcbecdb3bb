"""`cda memory add | list | delete | forget` and `cda session open | close | list`: a company's memory entries
and sessions, as events on their compacted topics (the agents fold them; the `memory` view shows them)."""

from __future__ import annotations

import typer
from rich.table import Table

from cda.cli.common import err, failing_clearly, out, produce, settings
from context import events as context_events
from context.memory import KINDS, PREFERENCE
from context.reads import read_memory, read_sessions

app = typer.Typer(help="A company's memory: preferences the agents take into account.", no_args_is_help=True)
session_app = typer.Typer(help="A company's sessions: jobs that see each other's results.", no_args_is_help=True)
COMPANY = typer.Option(..., "--company", "-c", help="The company.")




@app.command("add")
def add(text: str = typer.Argument(..., help="The entry, e.g. \"Default currency: CHF\"."), company: str = COMPANY,
        kind: str = typer.Option(PREFERENCE, help=f"One of {', '.join(KINDS)}."),
        tag: list[str] = typer.Option([], "--tag", help="A label (repeatable)."),
        entry_id: str | None = typer.Option(None, "--id", help="Replace this entry (default: a new one).")) -> None:
    """Write a memory entry; prints its id."""
    with failing_clearly():
        config = settings()
        event = context_events.memory_entry(company, text, config.memory_max_entry_chars, kind, tag, entry_id)
        produce(config, [event])
    out.print(event["entry_id"], markup=False)


@app.command("list")
def list_(company: str = COMPANY, kind: str | None = typer.Option(None, help="Only this kind.")) -> None:
    """The company's entries, oldest first."""
    with failing_clearly():
        entries = read_memory(settings()).entries_of(company)
    view = Table("entry", "kind", "session", "content")
    for entry in entries:
        if kind is None or entry.kind == kind:
            view.add_row(entry.entry_id, entry.kind, entry.session_id or "", entry.content[:120])
    out.print(view)


@app.command("delete")
def delete(entry_id: str = typer.Argument(..., help="The entry."), company: str = COMPANY) -> None:
    """Delete one entry: a `memory_deleted` event, then a tombstone for its key."""
    with failing_clearly():
        config = settings()
        if read_memory(config).get(company, entry_id) is None:
            raise ValueError(f"company {company} has no memory entry {entry_id}")
        event = context_events.deletion(company, entry_id)
        produce(config, [event], [event])
    err.print(f"deleted {entry_id} of {company}")


@app.command("forget")
def forget(company: str = COMPANY, yes: bool = typer.Option(False, "--yes", help="Do not ask.")) -> None:
    """Delete every entry of the company (preferences and automation history)."""
    with failing_clearly():
        config = settings()
        entries = read_memory(config).entries_of(company)
        if entries and not yes and not typer.confirm(f"delete all {len(entries)} entries of {company}?"):
            raise typer.Abort()
        events = context_events.forget(entries)
        produce(config, events, events)
    err.print(f"deleted {len(entries)} entries of {company}")


@session_app.command("open")
def open_(company: str = COMPANY, user: str | None = typer.Option(None, help="Who, in the company's terms.")) -> None:
    """Open a session; prints its id (pass it to `cda process --session`)."""
    with failing_clearly():
        event = context_events.session_opened(company, user)
        produce(settings(), [event])
    out.print(event["session_id"], markup=False)


@session_app.command("close")
def close(session_id: str = typer.Argument(..., help="The session."), company: str = COMPANY) -> None:
    """Close a session: later jobs naming it fail at acceptance."""
    with failing_clearly():
        config = settings()
        found = read_sessions(config).get(company, session_id)
        if found is None:
            raise ValueError(f"company {company} has no session {session_id}")
        produce(config, [context_events.session_closed(company, session_id)])
    err.print(f"closed {session_id}")


@session_app.command("list")
def sessions(company: str = COMPANY) -> None:
    """The company's sessions and whether they are open."""
    with failing_clearly():
        config = settings()
        found = [s for s in read_sessions(config).open_sessions() if s.company_id == company]
    view = Table("session", "opened (ms)")
    for session in found:
        view.add_row(session.session_id, str(session.opened_ms))
    out.print(view)
