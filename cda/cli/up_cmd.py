"""`cda up` (every part, supervised, with a live table) and `cda status` (the same table, from another terminal)."""

from __future__ import annotations

import json
import time
from datetime import datetime

import typer
from rich.live import Live
from rich.table import Table

from cda.cli.common import err, failing_clearly, out, settings
from cda.supervisor import PartStatus, StatusFile, Supervisor, SupervisorError, pid_alive
from core.signals import exit_on_signals

STYLE = {"ready": "green", "running": "green", "external": "cyan", "starting": "yellow", "restarting": "red",
         "failed": "red", "stopping": "yellow", "stopped": "dim", "pending": "dim"}


def _table(statuses: list[PartStatus], answers: dict[str, bool | None] | None = None, title: str = "cda up") -> Table:
    table = Table("part", "address", "state", "pid", "restarts", "detail", title=title)
    if answers is not None:
        table.add_column("answers")
    for s in statuses:
        state = f"[{STYLE.get(s.state, 'white')}]{s.state}[/]"
        row = [s.name, s.address, state, str(s.pid or "-"), str(s.restarts), s.detail]
        if answers is not None:
            row.append({True: "yes", False: "no", None: "-"}[answers.get(s.name)])
        table.add_row(*row)
    return table


def _status_file() -> StatusFile:
    from cda.stack import up_dir

    return StatusFile(up_dir(settings()) / "status.json")


def up(example_api: bool = typer.Option(False, "--example-api", help="Also serve acme's example API (the demo's company)."),
       external_vllm: bool = typer.Option(False, "--external-vllm", help="vLLM already runs at CDA_VLLM_URL: start only "
                                          "the lifecycle and the gateway."),
       vllm_servers: int | None = typer.Option(None, "--vllm-servers", min=1, max=16, help="vLLM servers to spread companies "
                                        "over (ports from CDA_VLLM_URL's on; default CDA_VLLM_SERVERS)."),
       kafka_brokers: int | None = typer.Option(None, "--kafka-brokers", min=1, max=9, help="Run Kafka as a local "
                                                "cluster of this many nodes (ports from CDA_KAFKA_PORT on), topics "
                                                "replicated on up to 3 of them.")) -> None:
    """Run every part on the embedded defaults as one supervised process tree until Ctrl-C / SIGTERM: the broker
    (or a local cluster), inference (vLLM + adapter lifecycle + gateway), the trainer, the agents, the API (with
    the projections) and, when asked, the example API. A part that dies is restarted with backoff; the broker stops last."""
    from cda.broker_part import on_cluster
    from cda.stack import build_parts, up_owner
    from core.children import end_owned

    with failing_clearly():
        config = settings()
        if vllm_servers is not None:
            config = config.model_copy(update={"vllm_servers": vllm_servers})
        if kafka_brokers is not None:
            config = on_cluster(config, kafka_brokers)
        status_file = _status_file()
        previous = status_file.read()
        if previous and not previous.get("stopped") and pid_alive(int(str(previous.get("supervisor_pid") or 0))):
            raise SupervisorError(f"cda up already runs (pid {previous['supervisor_pid']}); `cda status` shows it")
        left = end_owned(up_owner(config))  # a cda up killed outright: what of it still runs holds ports
        if left:
            err.print(f"ended {left} process(es) left by an earlier cda up of {config.home}")
        parts = build_parts(config, example_api, external_vllm)
        live_on = out.is_terminal
        live = Live(_table([p.status for p in parts]), console=out, refresh_per_second=4, transient=False) if live_on else None
        last: dict[str, str] = {}

        def show(statuses: list[PartStatus]) -> None:
            if live is not None:
                live.update(_table(statuses))
                return
            for s in statuses:  # no terminal (a log file): one line per change
                line = f"{s.state} {s.detail}".strip()
                if last.get(s.name) != line:
                    last[s.name] = line
                    out.print(f"{datetime.now():%H:%M:%S} {s.name:<12} {s.address:<48} {line}")

        supervisor = Supervisor(parts, status_file, on_change=show)
        err.print(f"cda up: home {config.home}; logs in {config.home / 'up' / 'logs'}; Ctrl-C stops every part")
        try:
            if live is not None:
                live.start()
            with exit_on_signals():
                supervisor.run()
        except SystemExit:
            pass
        finally:
            if live is not None:
                live.stop()
    out.print("cda up: every part stopped")


def status(as_json: bool = typer.Option(False, "--json", help="The status as JSON."),
           wait: float = typer.Option(0.0, help="Wait up to this many seconds until every part is up.")) -> None:
    """What `cda up` runs: each part's address, state, pid, restarts, and whether it answers now. Exit 1 when
    `cda up` is not running or a part is not up."""
    from cda.stack import UP_STATES, probe_status

    with failing_clearly():
        config = settings()
        deadline = time.monotonic() + wait
        while True:
            body = _status_file().read()
            running = bool(body) and not body.get("stopped") and pid_alive(int(str(body.get("supervisor_pid") or 0)))
            statuses = [PartStatus(**p) for p in (body or {}).get("parts", [])]  # type: ignore[attr-defined]
            answers = probe_status(config, statuses) if running else {}
            up_now = running and all(s.state in UP_STATES and answers.get(s.name) is not False for s in statuses)
            if up_now or time.monotonic() >= deadline:
                break
            time.sleep(1.0)
    if as_json:
        out.print(json.dumps({"running": running, "up": up_now, "parts": [
            {**s.__dict__, "answers": answers.get(s.name)} for s in statuses]}, indent=1))
    elif not body:
        err.print(f"cda up has never run under {config.home}")
    else:
        title = "cda up" if running else "cda up is not running (last known states)"
        out.print(_table(statuses, answers if running else None, title=title))
    if not up_now:
        raise typer.Exit(1)
