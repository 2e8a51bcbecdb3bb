"""The projection store: one interface over clickhouse-connect, for the embedded chDB engine and for a
ClickHouse server over HTTP alike (the DSN picks the backend: `chdb:///path` or `http://host:8123`).

chDB runs in this process and holds its folder exclusively, so one process owns an embedded store; the
store reconnects on demand after an outage, and turns every failure into `StoreUnavailable` (transient:
retry, commit nothing) or `StoreError` (deterministic: do not retry) by its kind and ClickHouse code
(`projections.failures`), never by its text.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from core.settings import Settings
from projections.errors import StoreError, StoreUnavailable
from projections.failures import error_code, is_transient_store_error

# The store reports a failed request itself (`StoreUnavailable` with its root cause); the driver's own
# warning about it would be a second, less helpful line on the console.
logging.getLogger("clickhouse_connect.driver._backend.http_sync").setLevel(logging.ERROR)
_QUERY_FAULTS = frozenset({159, 160, 164, 497})  # timeout, too slow, readonly, access denied: the query's own doing
_READS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"})
_SETTINGS = re.compile(r"\bSETTINGS\b", re.IGNORECASE)
_OUTFILE = re.compile(r"\bINTO\s+OUTFILE\b", re.IGNORECASE)
_COMMENTS = re.compile(r"/\*.*?\*/|--[^\n]*|#[^\n]*", re.DOTALL)


class ProjectionStore:
    """Statements, queries and batched inserts against one database of a ClickHouse engine."""

    def __init__(self, dsn: str, database: str, user: str | None = None, password: str | None = None) -> None:
        self.dsn = dsn
        self.database = database
        # a server's login travels beside the DSN, never in it: the DSN is printed and logged
        self._login: dict[str, str] = {k: v for k, v in (("username", user), ("password", password)) if v}
        self._client: Client | None = None
        self._lock = threading.RLock()

    @classmethod
    def from_settings(cls, settings: Settings) -> ProjectionStore:
        password = settings.clickhouse_password.get_secret_value() if settings.clickhouse_password else None
        return cls(settings.clickhouse_dsn, settings.clickhouse_database, settings.clickhouse_user, password)

    @property
    def embedded(self) -> bool:
        return self.dsn.startswith("chdb:")

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> None:
        self._run(lambda c: c.command(sql, parameters=parameters), sql)

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self._run(lambda c: c.query(sql, parameters=parameters).result_rows, sql)

    def query_dicts(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        def run(c: Client) -> list[dict[str, Any]]:
            result = c.query(sql, parameters=parameters)
            return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

        return self._run(run, sql)

    def read(self, sql: str, parameters: dict[str, Any] | None = None, max_rows: int = 1000,
             max_seconds: float = 10.0) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Someone's ad-hoc SQL, read-only, at most `max_rows` rows and `max_seconds` long: columns and rows.

        One statement that reads (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS), and ClickHouse's `readonly` mode
        on top. The limits go in the statement's own SETTINGS clause, never the session's: the embedded engine
        keeps session settings, and a session left read-only would stop the runners' writes. The query may not
        bring SETTINGS of its own (they could lift the limits). A refusal or a timeout is the query's doing
        (`StoreError`), never retried as the runners' writes are."""
        statement = sql.strip().rstrip(";").strip()
        if ";" in statement:
            raise StoreError("one statement at a time (no ';' inside the query)")
        bare = _COMMENTS.sub(" ", statement)  # what the checks read: comments could hide a keyword
        first = bare.split(None, 1)[0].upper() if bare.strip() else ""
        if first not in _READS:
            raise StoreError(f"only reads are allowed here ({', '.join(sorted(_READS))}), not {first or 'nothing'}")
        if _SETTINGS.search(bare):
            raise StoreError("the query may not carry SETTINGS (the limits are set here)")
        if _OUTFILE.search(bare):
            raise StoreError("only reads are allowed here: INTO OUTFILE writes a file")
        limited = f"{statement}\nSETTINGS limit={int(max_rows)}, max_execution_time={float(max_seconds)}, readonly=1"
        result = self._run(lambda c: c.query(limited, parameters=parameters), statement, faults=_QUERY_FAULTS)
        return list(result.column_names), list(result.result_rows)

    def insert(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> None:
        if rows:
            self._run(lambda c: c.insert(table, rows, column_names=list(columns)), f"INSERT INTO {table}")

    def close(self) -> None:
        """Shut the engine or connection down; the next call opens it again."""
        with self._lock:
            if self._client is not None:
                try:
                    self._client.close()
                finally:
                    self._client = None

    # -- internals --------------------------------------------------------------------------------
    def _connect(self) -> Client:
        if self._client is None:
            try:
                bootstrap = clickhouse_connect.get_client(dsn=self.dsn, **({} if self.embedded else self._login))
                bootstrap.command(f"CREATE DATABASE IF NOT EXISTS {self.database}")
                if self.embedded:  # one engine per process: reuse it, naming the database in the session
                    bootstrap.command(f"USE {self.database}")
                    bootstrap.database = self.database
                    self._client = bootstrap
                else:
                    bootstrap.close()
                    self._client = clickhouse_connect.get_client(dsn=self.dsn, database=self.database, **self._login)
            except Exception as exc:
                raise StoreUnavailable(f"{self._cannot_open()}: {_first_line(exc)}") from exc
        return self._client

    def _cannot_open(self) -> str:
        if self.embedded:
            return (f"cannot open the embedded ClickHouse store {self.dsn} (one process at a time: stop the "
                    f"`cda projections run` that holds it, or set CDA_CLICKHOUSE_URL to a ClickHouse server)")
        return (f"ClickHouse at {self.dsn} is unavailable (start it, or set CDA_CLICKHOUSE_URL to a server "
                f"that answers)")

    def _run(self, action: Any, what: str, faults: frozenset[int] = frozenset()) -> Any:
        """`action` on the client; a failure as `StoreUnavailable` (transient) or `StoreError`. `faults`: codes
        that are the statement's own doing here, though transient for the runners' writes."""
        with self._lock:
            client = self._connect()
            try:
                return action(client)
            except Exception as exc:  # the driver's errors, and the serializer's on a value a column cannot hold
                if is_transient_store_error(exc) and error_code(exc) not in faults:
                    if error_code(exc) is None:  # the connection or engine handle failed, not a statement: reopen
                        self.close()
                    raise StoreUnavailable(f"ClickHouse at {self.dsn} failed during {what[:80]} "
                                           f"(transient, worth retrying): {exc}") from exc
                raise StoreError(f"{what[:200]}: {type(exc).__name__}: {exc}") from exc


def _first_line(exc: BaseException) -> str:
    """The root cause in one short line (the driver wraps "Connection refused" in three layers of URLs)."""
    seen: set[int] = set()
    while id(exc) not in seen and (exc.__cause__ or exc.__context__) is not None:
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    text = str(exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:200] or type(exc).__name__
