"""One suite for the projection store interface, run against every backend that is available:
the embedded chDB engine always, a ClickHouse server when `CDA_TEST_CLICKHOUSE_URL` names one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest

from projections.errors import StoreError, StoreUnavailable
from projections.migrate import migrate, migrations, split_statements
from projections.store import ProjectionStore
from tests.conftest import free_port


@pytest.fixture
def db(clickhouse_dsn: str) -> Iterator[ProjectionStore]:
    store = ProjectionStore(clickhouse_dsn, f"contract_{uuid.uuid4().hex[:8]}")
    yield store
    store.command(f"DROP DATABASE IF EXISTS {store.database}")
    store.close()


def test_typed_rows_round_trip(db: ProjectionStore) -> None:
    db.command("CREATE TABLE t (k String, m Map(String, Float64), a Array(String), n Nullable(Int32), "
               "d DateTime64(3, 'UTC'), u UUID) ENGINE = MergeTree ORDER BY k")
    when = datetime(2026, 11, 24, 10, 0, 0, 123000)
    key = uuid.uuid4()
    db.insert("t", [("x", {"acc": 0.5}, ["a", "b"], None, when, key)], ["k", "m", "a", "n", "d", "u"])
    assert db.query("SELECT k, m, a, n, d, u FROM t") == [("x", {"acc": 0.5}, ["a", "b"], None, when, key)]
    assert db.query_dicts("SELECT k FROM t WHERE k = {k:String}", {"k": "x"}) == [{"k": "x"}]
    assert db.query_dicts("SELECT k FROM t WHERE k = {k:String}", {"k": "y"}) == []


def test_replacing_merge_tree_reads_duplicates_once_with_final(db: ProjectionStore) -> None:
    db.command("CREATE TABLE f (k String, e String, v UInt64) ENGINE = ReplacingMergeTree ORDER BY (k, e)")
    for _ in range(3):
        db.insert("f", [("a", "e1", 1), ("a", "e2", 2)], ["k", "e", "v"])
    assert db.query("SELECT count() FROM f FINAL") == [(2,)]


def test_exchange_tables_swaps_atomically(db: ProjectionStore) -> None:
    db.command("CREATE TABLE live (x UInt8) ENGINE = MergeTree ORDER BY x")
    db.command("CREATE TABLE fresh AS live")
    db.insert("fresh", [(1,), (2,)], ["x"])
    db.command("CREATE VIEW v AS SELECT count() AS n FROM live")
    db.command("EXCHANGE TABLES live AND fresh")
    assert db.query("SELECT n FROM v") == [(2,)]


def test_bad_sql_is_a_store_error_naming_the_statement(db: ProjectionStore) -> None:
    with pytest.raises(StoreError, match="SELEC 1"):
        db.command("SELEC 1")
    with pytest.raises(StoreError, match="missing_table"):
        db.query("SELECT * FROM missing_table")


def test_migrations_apply_once_and_create_the_named_views(db: ProjectionStore) -> None:
    assert [m.version for m in migrate(db)] == [m.version for m in migrations()]
    assert migrate(db) == []
    tables = {row[0] for row in db.query("SHOW TABLES")}
    assert {"company_automation_jobs", "company_tools", "lora_adapters", "tool_calls", "company_memory"} <= tables


def test_statement_splitting_drops_comments() -> None:
    assert split_statements("-- a comment; with a semicolon\nSELECT 1;\n\nSELECT 2;") == ("SELECT 1", "SELECT 2")


def test_an_unreachable_server_is_unavailable_not_an_error() -> None:
    store = ProjectionStore(f"http://localhost:{free_port()}", "cda")
    with pytest.raises(StoreUnavailable, match="localhost"):
        store.query("SELECT 1")


def test_server_errors_that_may_pass_are_unavailable_not_errors(db: ProjectionStore) -> None:
    """Real TOO_MANY_PARTS, MEMORY_LIMIT_EXCEEDED and TIMEOUT_EXCEEDED from the engine: retry, do not dead-letter."""
    db.command("CREATE TABLE p (n UInt64) ENGINE = MergeTree ORDER BY n "
               "SETTINGS parts_to_delay_insert = 1, parts_to_throw_insert = 1")
    db.command("SYSTEM STOP MERGES p")
    db.insert("p", [(1,)], ["n"])
    with pytest.raises(StoreUnavailable, match="TOO_MANY_PARTS"):
        db.insert("p", [(2,)], ["n"])
    with pytest.raises(StoreUnavailable, match="MEMORY_LIMIT_EXCEEDED"):
        db.query("SELECT groupArray(number) FROM numbers(10000000) SETTINGS max_memory_usage = 1000000")
    with pytest.raises(StoreUnavailable, match="TIMEOUT_EXCEEDED"):
        db.query("SELECT count() FROM numbers(100000000000) SETTINGS max_execution_time = 0.05")
    assert db.query("SELECT count() FROM p") == [(1,)]  # the store stays usable


def test_data_errors_are_errors_even_when_their_text_says_closed(db: ProjectionStore) -> None:
    db.command("CREATE TABLE t (n Int32, s String) ENGINE = MergeTree ORDER BY n")
    with pytest.raises(StoreError, match="closed"):  # refused by the row serializer
        db.insert("t", [("closed", "x")], ["n", "s"])
    with pytest.raises(StoreError, match="Nullable"):
        db.insert("t", [(1, None)], ["n", "s"])
    with pytest.raises(StoreError, match="CANNOT_PARSE_TEXT"):  # refused by the server, "closed" in its text
        db.command("INSERT INTO t SELECT 'closed', 'x'")
    db.insert("t", [(1, "closed")], ["n", "s"])
    assert db.query("SELECT n, s FROM t") == [(1, "closed")]
