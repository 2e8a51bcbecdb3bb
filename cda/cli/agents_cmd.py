"""`cda agents run|configure`, `cda process`, `cda jobs show|list`: the automation service and its jobs."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import typer
from rich.table import Table

from cda.cli.common import err, failing_clearly, out, progress_bar, settings
from topics.credentials import as_part
from topics.events import Event
from topics.producer import EventProducer

app = typer.Typer(help="The agents: company data in, company tools called, results out.", no_args_is_help=True)
jobs_app = typer.Typer(help="Automation jobs, read from the log.", no_args_is_help=True)


@app.command("run")
def run(loglevel: str = typer.Option("warning", help="Faust log level.")) -> None:
    """Run the agents (a Faust worker) until SIGINT/SIGTERM."""
    from streams.app import run_agents

    with failing_clearly():
        run_agents(as_part(settings(), "agents"), loglevel)


@app.command("configure")
def configure(
    company: str = typer.Option(..., help="Company id."),
    use_adapter: bool = typer.Option(True, "--use-adapter/--no-adapter", help="Ask the company's adapter."),
    step_limit: int = typer.Option(1000, help="Most units one job may take."),
    concurrency: int = typer.Option(4, help="Units (and API calls) of one job in flight at once."),
    allow_host: list[str] = typer.Option([], "--allow-host", help="A host:port its tools may reach although it is private."),
    allow_secret: list[str] = typer.Option([], "--allow-secret", help="A secret reference its tools may use."),
    job_deadline_s: int | None = typer.Option(None, help="Seconds one job may run (default: CDA_AGENT_JOB_DEADLINE_S)."),
    secret_host: list[str] = typer.Option([], "--secret-host", help="REF=HOST:PORT: a host:port the secret REF may be "
                                          "sent to (repeatable); a secret goes to no other host."),
) -> None:
    """Set a company's agent settings (an `agent_configured` event)."""
    with failing_clearly():
        event = Event.new("agent_configured", company, use_adapter=use_adapter, step_limit=step_limit,
                          concurrency=concurrency, allowed_hosts=allow_host, allowed_secrets=allow_secret,
                          job_deadline_s=job_deadline_s, secret_hosts=_secret_hosts(secret_host))
        with EventProducer(settings()) as producer:
            producer.produce(event)
    out.print(f"agent settings of {company} recorded")


def process(
    company: str = typer.Option(..., help="Company id."),
    task: str = typer.Option(..., help="What to do with the data, in the company's words."),
    data: Path = typer.Option(..., "--data", help="The data: a JSON file (a list of records is processed one by one)."),
    request_id: str | None = typer.Option(None, help="Your id of the request; repeating it repeats nothing."),
    use_adapter: bool | None = typer.Option(None, "--use-adapter/--no-adapter", help="Default: the company's setting."),
    tool: list[str] = typer.Option([], "--tool", help="Limit the job to these tools."),
    session: str | None = typer.Option(None, "--session", help="Run in this open session (`cda session open`): "
                                       "its decisions see the session's earlier results."),
    wait: bool = typer.Option(False, "--wait", help="Follow the job until it ends."),
    timeout: float = typer.Option(600.0, help="With --wait: give up following after this many seconds."),
) -> None:
    """Produce a data_process_requested event; with --wait, follow the job with a progress bar."""
    from context.units import split_units
    from streams.ids import job_id_for
    from streams.job_reader import follow_job

    with failing_clearly():
        try:
            payload = json.loads(data.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"--data {data}: not a readable JSON file ({exc})") from None
        config = settings()
        request_id = request_id or uuid.uuid4().hex
        job_id = job_id_for(company, request_id)
        payload_json = json.dumps(payload)
        event = Event.new("data_process_requested", company, request_id=request_id, job_id=job_id, task=task,
                          payload_json=payload_json, tools=tool, use_adapter=use_adapter,
                          session_id=session)
        since = datetime.now(timezone.utc) - timedelta(seconds=5)
        with EventProducer(config) as producer:
            producer.check_reachable()
            producer.produce(event)
        out.print(f"job {job_id} requested ({len(split_units(payload_json))} unit(s))")
        if not wait:
            return
        with progress_bar(f"job {job_id}") as bar:
            total = len(split_units(payload_json))
            task_id = bar.add_task("units", total=total)
            state = follow_job(config, job_id, since, timeout,
                               lambda _e, s: bar.update(task_id, completed=sum(u.done for u in s.units.values())))
    if state.finished is None:
        err.print(f"[yellow]job {job_id} has not ended after {timeout:.0f}s[/yellow]")
        raise typer.Exit(2)
    done = sum(1 for u in state.units.values() if u.outcome == "completed")
    out.print(f"job {job_id} {state.finished}: {done} of {len(state.units)} unit(s) completed, "
              f"{state.tool_calls} tool call(s)")
    if state.finished != "completed":
        raise typer.Exit(1)


@jobs_app.command("show")
def show(job_id: str = typer.Argument(...), since: str | None = typer.Option(None, help="Read from this time.")) -> None:
    """A job's events as a timeline."""
    from streams.job_reader import timeline
    from topics.positions import parse_time

    with failing_clearly():
        events = timeline(settings(), job_id, parse_time(since) if since else None)
        if not events:
            raise ValueError(f"no events of job {job_id} on company_automation_jobs")
    table = Table("at", "event", "step", "tool", "detail", title=f"job {job_id} ({events[0].company_id})")
    for e in events:
        detail = _detail(e)
        table.add_row(e.occurred_at.strftime("%H:%M:%S.%f")[:-3], e.type, str(e.data.get("step", "")),
                      str(e.data.get("tool_name", "")), str(detail))
    out.print(table)


def _detail(e: Event) -> str:
    """The line of a timeline that says what happened at this event."""
    if e.type == "tool_call_requested":
        return str(e["arguments_json"])
    if e.type == "tool_call_completed":
        return f"HTTP {e['status_code']} {str(e['result_json'])[:80]}"
    if e.type in ("tool_call_failed", "job_failed"):
        return f"{e['error_kind']}: {str(e['error'])[:80]}"
    if e.type == "step_started":
        return f"{e['model']} {e.data.get('adapter_version') or ''}"
    if e.type == "job_completed":
        return str(e["result_json"])[:100]
    return ""


@jobs_app.command("list")
def list_(company: str = typer.Option(..., help="Company id."), last: int = typer.Option(20, help="How many.")) -> None:
    """A company's jobs (newest last), with status and units."""
    from streams.job_reader import company_jobs

    with failing_clearly():
        jobs = company_jobs(settings(), company)
    table = Table("job", "accepted", "status", "units", "calls", "task", "error")
    for j in jobs[-last:]:
        done = sum(1 for u in j.state.units.values() if u.outcome == "completed")
        table.add_row(j.job_id, j.accepted_at.strftime("%Y-%m-%d %H:%M:%S") if j.accepted_at else "", j.status,
                      f"{done}/{len(j.state.units)}", str(j.state.tool_calls), j.task[:40], j.error[:60])
    out.print(table)


def _secret_hosts(entries: list[str]) -> dict[str, list[str]]:
    """`REF=HOST:PORT` options as the map `agent_configured` carries."""
    bound: dict[str, list[str]] = {}
    for entry in entries:
        ref, sep, host = entry.rpartition("=")
        if not sep or not ref or not host:
            raise ValueError(f"--secret-host {entry!r}: expected REF=HOST:PORT, e.g. env:ACME_TOKEN=api.acme.example:443")
        bound.setdefault(ref, []).append(host)
    return bound
