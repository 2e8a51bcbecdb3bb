"""The store's schema. Tables change by versioned DDL: `migrations/NNNN_name.sql`, applied in order, each once,
recorded in `cda_migrations`. Views hold no data, so each stands once, as it is now, in `views/NN_name.sql`
(in the order they build on each other) and is replaced on every `migrate`: a changed view is one edit there,
never a restated copy in a new migration."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from projections.store import ProjectionStore

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VIEWS_DIR = Path(__file__).parent / "views"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def split_statements(sql: str) -> tuple[str, ...]:
    """Statements of a migration file: `;`-terminated, `--` comments dropped."""
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return tuple(s.strip() for s in body.split(";") if s.strip())


def migrations(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise ValueError(f"{path}: migration files are named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), split_statements(path.read_text())))
    return found


def migrate(store: ProjectionStore, folder: Path = MIGRATIONS_DIR, views: Path = VIEWS_DIR) -> list[Migration]:
    """Apply the migrations this database has not seen, then (re)create every view; returns the migrations
    applied now."""
    store.command(
        "CREATE TABLE IF NOT EXISTS cda_migrations (version UInt32, name String, "
        "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY version"
    )
    done = {row[0] for row in store.query("SELECT version FROM cda_migrations")}
    applied = []
    for migration in migrations(folder):
        if migration.version in done:
            continue
        for statement in migration.statements:
            store.command(statement)
        store.insert("cda_migrations", [(migration.version, migration.name)], ["version", "name"])
        applied.append(migration)
    for path in sorted(views.glob("*.sql")):
        for statement in split_statements(path.read_text()):
            store.command(statement)
    return applied
