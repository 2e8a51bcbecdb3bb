"""What the example company API keeps: every call it received, every effect it caused, and the faults it
was asked to stage — in SQLite, so that a test or the demo can count effects after any crash of either side.

Idempotency is enforced by the database, not by memory: an effect's `idempotency_key` is UNIQUE, and each
request is decided inside one `BEGIN IMMEDIATE` transaction (SQLite's single writer), so two concurrent
requests with the same key cannot both cause an effect — the second sees the first one's row and replays
its answer.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS effects (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tool TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    arguments_json TEXT NOT NULL,
    status INTEGER NOT NULL,
    response_json TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tool TEXT NOT NULL,
    idempotency_key TEXT,
    outcome TEXT NOT NULL,
    status INTEGER NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_by_key ON calls (idempotency_key);
CREATE TABLE IF NOT EXISTS faults (
    tool TEXT PRIMARY KEY,
    fail_left INTEGER NOT NULL,
    fail_status INTEGER NOT NULL,
    slow_left INTEGER NOT NULL,
    slow_ms INTEGER NOT NULL
);
"""
ANY_TOOL = "*"  # a staged fault that applies to every tool


@dataclass(frozen=True)
class Staged:
    """Faults for one request: how many of a key's first attempts fail, with which status, and a delay."""

    fail_times: int = 0
    fail_status: int = 503
    slow_ms: int = 0


@dataclass(frozen=True)
class Outcome:
    """What a request came to: its answer, whether it caused an effect, and how long to hold the answer."""

    status: int
    body: dict[str, Any]
    outcome: str  # created | replayed | failed | conflict
    slow_ms: int = 0


class ExampleStore:
    """The example API's SQLite file (WAL): one connection per thread, one write transaction per request."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._connection().executescript(_SCHEMA)  # idempotent DDL; executescript manages its own transaction

    def _connection(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable against a crash of the process
            self._local.db = db
            with self._lock:
                self._all.append(db)
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")  # take the write lock first: the decision and its effect are one step
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for db in self._all:
                db.close()
            self._all.clear()

    # -- requests ---------------------------------------------------------------------------------
    def record(self, tool: str, arguments: Mapping[str, Any], key: str | None, staged: Staged) -> Outcome:
        """Decide one valid request: a staged failure, the first answer again for a known key, or a new effect."""
        now = time.time()
        with self._transaction() as db:
            outcome = self._decide(db, tool, arguments, key, staged, now)
            db.execute("INSERT INTO calls (tool, idempotency_key, outcome, status, received_at) VALUES (?, ?, ?, ?, ?)",
                       (tool, key, outcome.outcome, outcome.status, now))
        return outcome

    def record_rejected(self, tool: str, key: str | None, status: int) -> None:
        """Count a request refused before any decision (invalid body or header): it is a call, not an effect."""
        with self._transaction() as db:
            db.execute("INSERT INTO calls (tool, idempotency_key, outcome, status, received_at) VALUES (?, ?, ?, ?, ?)",
                       (tool, key, "invalid", status, time.time()))

    def _decide(self, db: sqlite3.Connection, tool: str, arguments: Mapping[str, Any], key: str | None,
                staged: Staged, now: float) -> Outcome:
        attempt = 1
        if key is not None:
            attempt += db.execute("SELECT COUNT(*) FROM calls WHERE idempotency_key = ?", (key,)).fetchone()[0]
        fault_status, fault_slow_ms = self._take_fault(db, tool)
        if staged.fail_times >= attempt or fault_status:
            status = fault_status or staged.fail_status
            return Outcome(status, {"detail": f"failing on purpose (attempt {attempt})"}, "failed")
        slow_ms = max(staged.slow_ms, fault_slow_ms)
        if key is not None:
            first = db.execute("SELECT tool, arguments_json, status, response_json FROM effects WHERE idempotency_key = ?",
                               (key,)).fetchone()
            if first is not None:
                if first[0] != tool or json.loads(first[1]) != dict(arguments):
                    return Outcome(422, {"detail": f"Idempotency-Key {key!r} was first used for a different request"},
                                   "conflict")
                return Outcome(int(first[2]), json.loads(first[3]), "replayed", fault_slow_ms)
        cursor = db.execute("INSERT INTO effects (tool, idempotency_key, arguments_json, status, response_json, created_at) "
                            "VALUES (?, ?, ?, 201, '{}', ?)", (tool, key, json.dumps(dict(arguments)), now))
        effect_id = int(cursor.lastrowid or 0)
        body = {"id": effect_id, "tool": tool, "ref": arguments.get("ref")}
        db.execute("UPDATE effects SET response_json = ? WHERE id = ?", (json.dumps(body), effect_id))
        return Outcome(201, body, "created", slow_ms)

    # -- staged faults ----------------------------------------------------------------------------
    def stage(self, tool: str, fail_next: int, fail_status: int, slow_next: int, slow_ms: int) -> None:
        """The next `fail_next` calls of `tool` (or of any, `*`) answer `fail_status`; the next `slow_next` wait."""
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO faults VALUES (?, ?, ?, ?, ?)", (tool, fail_next, fail_status, slow_next, slow_ms))

    def clear_faults(self) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM faults")

    def _take_fault(self, db: sqlite3.Connection, tool: str) -> tuple[int, int]:
        """(failure status or 0, delay in ms) staged for this call; each consumes one of its count."""
        status, slow = 0, 0
        for name in (tool, ANY_TOOL):
            row = db.execute("SELECT fail_left, fail_status, slow_left, slow_ms FROM faults WHERE tool = ?", (name,)).fetchone()
            if row is None:
                continue
            fail_left, fail_status, slow_left, slow_ms = row
            if fail_left > 0 and not status:
                status, fail_left = fail_status, fail_left - 1
            if slow_left > 0 and not slow:
                slow, slow_left = slow_ms, slow_left - 1
            db.execute("UPDATE faults SET fail_left = ?, slow_left = ? WHERE tool = ?", (fail_left, slow_left, name))
        return status, slow

    # -- reading ----------------------------------------------------------------------------------
    def effects(self, tool: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        rows = self._connection().execute(
            "SELECT id, tool, idempotency_key, arguments_json, created_at FROM effects "
            "WHERE (? IS NULL OR tool = ?) ORDER BY id LIMIT ?", (tool, tool, limit)).fetchall()
        return [{"id": r[0], "tool": r[1], "idempotency_key": r[2], "arguments": json.loads(r[3]), "created_at": r[4]}
                for r in rows]

    def counts(self, tool: str | None = None) -> dict[str, int]:
        """Effects caused, and calls received by outcome: what a test compares to count lost or doubled effects."""
        db = self._connection()
        effects = db.execute("SELECT COUNT(*) FROM effects WHERE (? IS NULL OR tool = ?)", (tool, tool)).fetchone()[0]
        by_outcome = dict(db.execute("SELECT outcome, COUNT(*) FROM calls WHERE (? IS NULL OR tool = ?) GROUP BY outcome",
                                     (tool, tool)).fetchall())
        calls = sum(by_outcome.values())
        return {"effects": effects, "calls": calls, **{k: by_outcome.get(k, 0)
                                                       for k in ("created", "replayed", "failed", "conflict", "invalid")}}
