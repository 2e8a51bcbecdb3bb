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
