"""`cda kafka up | down | status`: the project's own single-node Kafka broker."""

from __future__ import annotations

import secrets
from pathlib import Path

import typer

from cda.cli.common import err, failing_clearly, out, settings
from topics.broker import from_settings
from topics.cluster import cluster_from_settings
from topics.credentials import env_file as env_lines
from topics.credentials import write_private

app = typer.Typer(help="Run the local Apache Kafka broker (KRaft, single node) under CDA_HOME.", no_args_is_help=True)


@app.command()
def up(wait: float = typer.Option(90.0, help="Seconds to wait for the broker to answer."),
       brokers: int | None = typer.Option(None, "--brokers", min=1, max=9, help="Run a local cluster of this many "
                                          "nodes (default CDA_KAFKA_BROKERS, 1).")) -> None:
    """Fetch the jars (once), format storage (once), start the broker (or cluster) and wait until it answers."""
    with failing_clearly():
        config = settings()
        if brokers is not None:
            config = config.model_copy(update={"kafka_brokers": brokers})
        if config.kafka_brokers > 1:
            cluster = cluster_from_settings(config)
            err.print(f"starting a {len(cluster.nodes)}-node Kafka cluster (data in {config.kafka_dir}) ...")
            cluster.start(wait_s=max(wait, 120.0))
            out.print(f"kafka cluster up: CDA_KAFKA_BOOTSTRAP={cluster.bootstrap}; give its topics "
                      f"CDA_KAFKA_REPLICATION={min(3, len(cluster.nodes))} "
                      f"CDA_KAFKA_MIN_INSYNC={max(1, min(3, len(cluster.nodes)) - 1)}")
            return
        broker = from_settings(config)
        running = broker.pid() is not None
        if not running:
            err.print(f"starting Kafka on {broker.bootstrap} (data in {broker.data_dir}) ...")
        broker.start(wait_s=wait)
        out.print(f"kafka {'already running' if running else 'up'} on {broker.bootstrap} (pid {broker.pid()})")
        if broker.auth and not broker.secured():
            err.print(f"[yellow]warning:[/yellow] {broker.data_dir} was formatted before brokers authenticated: it "
                      "runs open (no SASL, no ACLs); move its data aside and start again to secure it")
        elif broker.secured():
            out.print(f"clients log in with SASL/SCRAM; passwords in {broker.credentials_file} (mode 0600)")


@app.command()
def down() -> None:
    """Stop the broker (or every node of the cluster) with SIGTERM (a clean shutdown: every event is kept)."""
    config = settings()
    if config.kafka_brokers > 1:
        out.print("kafka cluster stopped" if cluster_from_settings(config).stop() else "kafka cluster was not running")
        return
    broker = from_settings(config)
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


@app.command()
def credentials(
    env_file: Path | None = typer.Option(None, "--env-file", help="Also write the passwords as the .env that "
                                         "docker compose reads (mode 0600)."),
) -> None:
    """Make the principals' passwords (once; kept after) and say where they are; never prints a password."""
    with failing_clearly():
        broker = from_settings(settings())
        passwords = broker.passwords()
        out.print(f"{len(passwords)} principals ({', '.join(sorted(passwords))}) in {broker.credentials_file}")
        if env_file is not None:
            kept = _env_values(env_file)  # ClickHouse's and Grafana's passwords stay what they were
            extra = {name: kept.get(name) or secrets.token_urlsafe(24)
                     for name in ("CDA_CLICKHOUSE_PASSWORD", "CDA_GRAFANA_PASSWORD")}
            write_private(env_file, env_lines(passwords) + "".join(f"{k}={v}\n" for k, v in extra.items()))
            out.print(f"wrote {env_file} for docker compose (mode 0600)")


def _env_values(path: Path) -> dict[str, str]:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return {}
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
