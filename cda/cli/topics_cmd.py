"""`cda topics apply | list`: the topic catalog on the broker."""

from __future__ import annotations

import typer
from rich.table import Column, Table

from cda.cli.common import failing_clearly, out, settings
from topics.admin import apply_catalog
from topics.catalog import CATALOG, DAY_MS

app = typer.Typer(help="Create, verify and list the catalog's topics.", no_args_is_help=True)


@app.command()
def apply() -> None:
    """Create missing topics and bring configs and partitions to the catalog (idempotent)."""
    with failing_clearly():
        changes = apply_catalog(settings())
    for change in changes:
        colour = {"created": "green", "updated": "yellow", "ok": "dim", "problem": "red"}[change.action]
        out.print(f"[{colour}]{change.action:8}[/{colour}] {change.topic} {change.detail}")
    if any(c.action == "problem" for c in changes):
        raise typer.Exit(1)


@app.command("list")
def list_() -> None:
    """The catalog: topics, keys, partitions, cleanup policy, retention and event types."""
    table = Table(Column("topic", no_wrap=True), "key", "partitions", "cleanup", "retention", "event types")
    for spec in CATALOG:
        retention = "forever" if spec.retention_ms < 0 else f"{spec.retention_ms // DAY_MS}d"
        table.add_row(spec.name, "/".join(spec.key_fields), str(spec.partitions), spec.cleanup_policy,
                      retention, ", ".join(spec.event_types))
    out.print(table)
