"""`cda sql "SELECT …"`: read-only SQL on the projection store, while the stack runs or not.

The embedded chDB store has one owner: while `cda up` (or `cda api serve`) runs, the API process holds it, so
the query goes to its `POST /admin/sql` with the operator key; with no API up (or a ClickHouse server) the
store is opened here. Either way ClickHouse runs it in `readonly` mode, within a row and a time limit."""

from __future__ import annotations

from typing import Any

import httpx
import typer
from rich.table import Table

from cda.cli.common import failing_clearly, out, settings
from cda.stack import api_url, operator_key
from core.errors import CdaError
from core.health import answers_ok
from core.settings import Settings
from projections.migrate import migrate
from projections.store import ProjectionStore


class SqlRefused(CdaError):
    """The query was refused (not read-only, not valid SQL, too slow): the store's reason."""


def read_sql(config: Settings, sql: str, parameters: dict[str, Any] | None = None, max_rows: int = 1000,
             timeout_s: float = 10.0) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of a read-only query, through the running API where it holds the embedded store."""
    key = operator_key(config)
    if ProjectionStore.from_settings(config).embedded and key and answers_ok(f"{api_url(config)}/health/live"):
        answer = httpx.post(f"{api_url(config)}/admin/sql", headers={"Authorization": f"Bearer {key}"},
                            json={"sql": sql, "parameters": parameters or {}, "max_rows": max_rows,
                                  "timeout_s": timeout_s}, timeout=timeout_s + 30)
        if answer.status_code != 200:
            raise SqlRefused(f"{answer.status_code}: {answer.json().get('error', answer.text)}")
        body = answer.json()
        return list(body["columns"]), [list(r) for r in body["rows"]]
    store = open_store(config)  # this process owns the store now: migrated, the views exist before any fold
    try:
        columns, rows = store.read(sql, parameters, max_rows, timeout_s)
    finally:
        store.close()
    return columns, [list(r) for r in rows]


def open_store(config: Settings | None = None) -> ProjectionStore:
    """The store, migrated; an unreachable ClickHouse is a `StoreUnavailable` that names what to do."""
    store = ProjectionStore.from_settings(config or settings())
    try:
        migrate(store)
    except BaseException:
        store.close()
        raise
    return store


def print_rows(columns: list[str], rows: list[list[Any]], empty: str) -> None:
    if not rows:
        out.print(empty)
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    out.print(table)


def sql(
    query: str = typer.Argument(..., help="One read-only statement, e.g. \"SELECT status, count() FROM "
                                          "company_automation_jobs GROUP BY status\"."),
    max_rows: int = typer.Option(1000, "--max-rows", min=1, max=100_000),
    timeout_s: float = typer.Option(10.0, "--timeout", min=0.1, max=120),
) -> None:
    """Run read-only SQL on the ClickHouse views (through the running API when it holds the embedded store)."""
    with failing_clearly():
        columns, rows = read_sql(settings(), query, None, max_rows, timeout_s)
    print_rows(columns, rows, "no rows")
