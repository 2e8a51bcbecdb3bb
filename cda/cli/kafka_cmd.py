"""`cda kafka up | down | status`: the project's own single-node Kafka broker."""

from __future__ import annotations

import typer

from cda.cli.common import err, failing_clearly, out, settings
from topics.broker import from_settings

app = typer.Typer(help="Run the local Apache Kafka broker (KRaft, single node) under CDA_HOME.", no_args_is_help=True)


@app.command()
def up(wait: float = typer.Option(90.0, help="Seconds to wait for the broker to answer.")) -> None:
    """Fetch the jars (once), format storage (once), start the broker and wait until it answers."""
    with failing_clearly():
        broker = from_settings(settings())
        running = broker.pid() is not None
        if not running:
            err.print(f"starting Kafka on {broker.bootstrap} (data in {broker.data_dir}) ...")
        broker.start(wait_s=wait)
        out.print(f"kafka {'already running' if running else 'up'} on {broker.bootstrap} (pid {broker.pid()})")


@app.command()
def down() -> None:
    """Stop the broker with SIGTERM (a clean shutdown: every event is kept)."""
    broker = from_settings(settings())
    out.print("kafka stopped" if broker.stop() else "kafka was not running")


@app.command()
def status() -> None:
    """Whether the local broker runs and answers; exit code 1 when it does not."""
    broker = from_settings(settings())
    pid = broker.pid()
    answering = broker.answers()
    out.print(f"pid: {pid or '-'}\nbootstrap: {broker.bootstrap}\nanswering: {answering}\ndata: {broker.data_dir}\njars: {broker.lib_dir}")
    if pid is None or not answering:
        raise typer.Exit(1)


@app.command()
def fetch() -> None:
    """Fetch the broker's jars with Maven into CDA_HOME (done by `up` too; CI runs it ahead)."""
    with failing_clearly():
        broker = from_settings(settings())
        broker.fetch()
        out.print(f"kafka jars in {broker.lib_dir}")
