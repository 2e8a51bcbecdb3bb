"""`cda projections migrate | run | rebuild | list` and `cda query`: the ClickHouse views."""

from __future__ import annotations

import signal
import threading
import time

import typer
from rich.table import Table

from cda.cli.common import err, failing_clearly, out, progress_bar, settings
from cda.cli.sql_cmd import open_store, print_rows, read_sql
from core.workers import WorkerThread
from projections.catalog import PROJECTIONS, projection
from projections.migrate import migrate as apply_migrations
from projections.queries import LISTINGS, listing_sql
from projections.rebuild import rebuild as rebuild_view
from projections.runner import ProjectionRunner
from projections.store import ProjectionStore
from topics.credentials import as_part
from topics.positions import parse_time

app = typer.Typer(help="ClickHouse views folded from the topics.", no_args_is_help=True)


@app.command()
def migrate() -> None:
    """Apply the versioned DDL the database has not seen yet."""
    with failing_clearly():
        store = ProjectionStore.from_settings(settings())
        try:
            applied = apply_migrations(store)
        finally:
            store.close()
    out.print("\n".join(f"applied {m.version:04d}_{m.name}" for m in applied) or "up to date")


@app.command("list")
def list_() -> None:
    """The projections: their topics, facts table and view."""
    table = Table("projection", "topics", "facts table", "view")
    for p in PROJECTIONS.values():
        table.add_row(p.name, ", ".join(p.topics), p.table, p.view)
    out.print(table)


@app.command()
def run(
    names: list[str] = typer.Argument(None, help="Projections to run; default all."),
    seconds: float | None = typer.Option(None, help="Stop after this long (default: until Ctrl-C / SIGTERM)."),
) -> None:
    """Fold the topics into the views until stopped; offsets are committed after rows are stored."""
    with failing_clearly():
        config = as_part(settings(), "projections")
        chosen = [projection(n) for n in (names or list(PROJECTIONS))]
        store = open_store()
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        runners = [ProjectionRunner(config, store, p) for p in chosen]
        workers = [WorkerThread(f"projection-{r.projection.name}", r.run, stop).start() for r in runners]
        err.print(f"running {', '.join(p.name for p in chosen)} into {store.dsn} (database {store.database})")
        dead: list[WorkerThread] = []
        try:
            deadline = time.monotonic() + seconds if seconds else None
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                dead = [w for w in workers if not w.healthy]
                if dead:
                    break
                stop.wait(0.5)
        except KeyboardInterrupt:
            pass
        stop.set()
        for worker in workers:
            worker.join()
        store.close()
        for r in runners:
            s = r.stats
            out.print(f"{r.projection.name}: {s.events} events, {s.rows} rows, {s.skipped} skipped, "
                      f"{s.dead_lettered} dead-lettered, {s.store_failures} store retries, {s.rejoins} re-joins")
    for worker in dead:
        err.print(f"[red]error:[/red] {worker.name} stopped: {worker.error!r}; the others were stopped too — "
                  f"fix the cause and run `cda projections run` again (nothing uncommitted is lost)")
    if dead:
        raise typer.Exit(1)


@app.command()
def rebuild(
    name: str = typer.Argument(..., help="Projection to rebuild."),
    since: str | None = typer.Option(None, help="Only re-read events from this time (ISO-8601, epoch ms, 15m/2h/1d)."),
) -> None:
    """Rebuild a view from the topics into a fresh table and swap it in atomically."""
    with failing_clearly():
        chosen = projection(name)
        store = open_store()
        try:
            with progress_bar(f"rebuilding {name}") as bar:
                task = bar.add_task("rebuild", total=None)
                result = rebuild_view(settings(), store, chosen, parse_time(since) if since else None,
                                      lambda done, total: bar.update(task, completed=done, total=total))
        finally:
            store.close()
    out.print(f"rebuilt {result.table}: {result.events} events read, {result.rows} rows, "
              f"{result.carried_over} kept from before --since, {result.caught_up} caught up from the live table")
    if result.skipped:
        out.print(f"skipped {result.skipped_total} events that gave no row: "
                  + ", ".join(f"{n} {reason}" for reason, n in sorted(result.skipped.items())))


def query(
    view: str = typer.Argument(..., help=f"One of: {', '.join(LISTINGS)}."),
    company: str = typer.Option(..., "--company", help="The company whose rows to show."),
) -> None:
    """Print one company's rows of a view as a table (through the running API when it holds the store)."""
    with failing_clearly():
        columns, rows = read_sql(settings(), listing_sql(view), {"company": company}, max_rows=100_000)
    print_rows(columns, rows, f"no {view} for company {company}")
