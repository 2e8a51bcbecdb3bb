"""Transient is not poison: store failures are classified by kind and ClickHouse code, never by their text.

The unit tests build the exceptions the driver itself builds; the integration tests stage real ClickHouse
errors in the real chDB engine under a running projection: a deterministic refusal whose text says
"closed" is dead-lettered (not retried for ever), and TOO_MANY_PARTS is retried (not dead-lettered).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import pytest
from clickhouse_connect.driver._backend.httpcommon import build_http_error
from clickhouse_connect.driver.exceptions import (
    DatabaseError,
    DataError,
    OperationalError,
    ProgrammingError,
    StreamFailureError,
)

from core.settings import Settings
from core.workers import WorkerThread
from projections.catalog import JOBS, projection
from projections.failures import TRANSIENT_CODES, error_code, is_transient_store_error
from projections.model import Projection
from projections.queries import listing
from projections.runner import ProjectionRunner
from projections.store import ProjectionStore
from tests.helpers import eventually
from tests.projections.test_projections import job_story, memory_events, produce
from topics.consumer import EventConsumer
from topics.events import Event
from topics.positions import Position

Catalog = Callable[..., Settings]
URL = "http://127.0.0.1:8123"


def server_error(code: int, name: str, text: str, status: int = 500) -> DatabaseError:
    """What the HTTP driver raises for a ClickHouse exception answer (its own builder)."""
    body = f"Code: {code}. DB::Exception: {text}. ({name}) (version 25.8.1.1 (official build))"
    return build_http_error(status, str(code), body, True, URL, False)


TRANSIENT = {
    "too many parts": server_error(252, "TOO_MANY_PARTS", "Too many parts (300). Merges are processing significantly slower than inserts"),
    "memory limit": server_error(241, "MEMORY_LIMIT_EXCEEDED", "Memory limit (total) exceeded: would use 9.31 GiB"),
    "timeout": server_error(159, "TIMEOUT_EXCEEDED", "Timeout exceeded: elapsed 30.001 seconds, maximum: 30"),
    "socket timeout": server_error(209, "SOCKET_TIMEOUT", "Timeout exceeded while reading from socket"),
    "network": server_error(210, "NETWORK_ERROR", "Connection reset by peer"),
    "read-only table": server_error(242, "TABLE_IS_READ_ONLY", "Table is in readonly mode"),
    "chdb text only": DatabaseError("Code: 252. DB::Exception: Too many parts (3000) in table 'cda.job_facts'. (TOO_MANY_PARTS)"),
    "stream cut": StreamFailureError("Code: 394. DB::Exception: Query was cancelled. (QUERY_WAS_CANCELLED)"),
    "connection lost": OperationalError("Error HTTPConnectionPool(host='127.0.0.1', port=8123): Max retries exceeded"),
    "proxy 503": build_http_error(503, None, "upstream connect error or disconnect/reset before headers", True, URL, False),
    "client closed": ProgrammingError("The client has been closed"),
    "refused socket": ConnectionRefusedError(111, "Connection refused"),
    "socket timeout (python)": socket.timeout("timed out"),
}
DETERMINISTIC = {
    "closed in the data": server_error(6, "CANNOT_PARSE_TEXT", "Cannot parse string 'closed' as UInt64"),
    "connection closed in the data": server_error(469, "VIOLATED_CONSTRAINT",
                                                  "Constraint `c` is violated. Column values: error = 'the connection closed'"),
    "type mismatch": server_error(53, "TYPE_MISMATCH", "Type mismatch in IN or VALUES section"),
    "value out of range": server_error(69, "ARGUMENT_OUT_OF_BOUND", "Value out of range"),
    "bad sql": server_error(62, "SYNTAX_ERROR", "Syntax error: failed at position 1 ('SELEC')", status=400),
    "unknown table": server_error(60, "UNKNOWN_TABLE", "Table cda.missing does not exist", status=404),
    "chdb text only": DatabaseError("Code: 6. DB::Exception: Cannot parse string 'closed' as Int32. (CANNOT_PARSE_TEXT)"),
    "proxy 400": build_http_error(400, None, "bad request: stream closed", True, URL, False),
    "serializer: none in non-nullable": DataError("Invalid None value in non-Nullable column, column name: `closed`"),
    "serializer: out of range": DataError("Unable to create native array for column `attempt`: error"),
    "serializer: not an int": ValueError("invalid literal for int() with base 10: 'closed'"),
    "serializer: wrong type": AttributeError("'int' object has no attribute 'encode'"),
}


@pytest.mark.parametrize("exc", TRANSIENT.values(), ids=TRANSIENT.keys())
def test_transient_failures_are_retried(exc: BaseException) -> None:
    assert is_transient_store_error(exc)


@pytest.mark.parametrize("exc", DETERMINISTIC.values(), ids=DETERMINISTIC.keys())
def test_deterministic_failures_are_not_retried_even_when_they_say_closed(exc: BaseException) -> None:
    assert not is_transient_store_error(exc)


def test_the_code_comes_from_the_exception_or_its_message() -> None:
    assert error_code(TRANSIENT["too many parts"]) == 252
    assert error_code(TRANSIENT["chdb text only"]) == 252
    assert error_code(OperationalError("Error executing HTTP request")) is None
    assert {252, 241, 159, 209, 210, 242} <= set(TRANSIENT_CODES)


# -- the real engine under a running projection ---------------------------------------------------

def dead_letters(settings: Settings) -> list[Event]:
    with EventConsumer(settings, "dlq-reader") as consumer:
        consumer.assign("dead_letters", Position.beginning(), until_end=True)
        return [r.event for r in consumer]


def run_jobs(settings: Settings, store: ProjectionStore, projection: Projection = JOBS) -> tuple[ProjectionRunner, WorkerThread]:
    runner = ProjectionRunner(settings, store, projection, flush_interval_s=0.1,
                              group_id=f"{settings.topic_prefix}{projection.name}", max_backoff_s=0.5)
    return runner, WorkerThread(f"projection-{projection.name}", runner.run, threading.Event()).start()


@pytest.mark.kafka
def test_a_refusal_that_says_closed_is_dead_lettered_not_retried_for_ever(catalog: Catalog, store: ProjectionStore) -> None:
    settings = catalog("company_automation_jobs", "dead_letters")
    # a deterministic server-side refusal whose text contains "closed" (the value itself)
    store.command("ALTER TABLE job_facts ADD CONSTRAINT no_closed_errors CHECK error != 'closed'")
    bad = job_story("acme", "j-bad", fail_job=True)
    bad[-1] = Event.new("job_failed", "acme", occurred_at=bad[-1].occurred_at, job_id="j-bad", error="closed",
                        error_kind="tool", steps=2, tool_calls=2, latency_ms=1.0)
    good = job_story("acme", "j-good")
    produce(settings, bad + good)
    runner, worker = run_jobs(settings, store)
    try:
        eventually(lambda: runner.stats.rows + runner.stats.dead_lettered >= len(bad + good) or not worker.alive,
                   60, "every event stored or dead-lettered")
    finally:
        worker.stop.set()
        worker.join(30)
    assert worker.error is None
    assert runner.stats.dead_lettered == 1 and runner.stats.store_failures == 0
    assert runner.stats.rows == len(bad + good) - 1
    jobs = {r["job_id"]: r["status"] for r in listing(store, "jobs", "acme")}
    assert jobs == {"j-bad": "running", "j-good": "completed"}  # the refused job_failed only is missing
    letters = dead_letters(settings)
    assert len(letters) == 1 and "VIOLATED_CONSTRAINT" in letters[0].data["reason"]


@pytest.mark.kafka
def test_too_many_parts_is_retried_until_it_passes_and_nothing_is_dead_lettered(
    catalog: Catalog, store: ProjectionStore
) -> None:
    settings = catalog("company_automation_jobs", "dead_letters")
    # a real TOO_MANY_PARTS: one part is already too many, and no merge will bring the count down
    store.command("SYSTEM STOP MERGES job_facts")
    store.command("ALTER TABLE job_facts MODIFY SETTING parts_to_delay_insert = 1, parts_to_throw_insert = 1")
    events = job_story("acme", "j1") + job_story("acme", "j2")
    produce(settings, events[:1])
    runner, worker = run_jobs(settings, store)
    try:
        eventually(lambda: runner.stats.rows == 1, 60, "the first row stored (the one part)")
        produce(settings, events[1:])
        eventually(lambda: runner.stats.store_failures >= 3, 60, "inserts refused with TOO_MANY_PARTS, retried")
        assert runner.stats.dead_lettered == 0 and runner.stats.rows == 1
        store.command("ALTER TABLE job_facts MODIFY SETTING parts_to_delay_insert = 1000, parts_to_throw_insert = 3000")
        eventually(lambda: runner.stats.rows == len(events), 60, "the batch stored once the parts limit allows it")
    finally:
        worker.stop.set()
        worker.join(30)
    assert worker.error is None and runner.stats.dead_lettered == 0
    assert {r["job_id"]: r["status"] for r in listing(store, "jobs", "acme")} == {"j1": "completed", "j2": "completed"}
    assert dead_letters(settings) == []


@pytest.mark.kafka
def test_any_deterministic_failure_of_a_fold_is_dead_lettered_and_the_runner_goes_on(
    catalog: Catalog, store: ProjectionStore
) -> None:
    settings = catalog("company_memory", "dead_letters")
    memory = projection("memory")

    def fragile(event: Event) -> dict[str, object]:  # a fold with a bug that only some events reach
        if event.data["entry_id"] == "m2":
            raise ZeroDivisionError("a bug in the fold")
        return memory.folds["memory_written"](event)

    buggy = Projection(memory.name, memory.topics, memory.table, memory.view, memory.defaults,
                       {**memory.folds, "memory_written": fragile})
    events = memory_events("acme")
    produce(settings, events)
    runner, worker = run_jobs(settings, store, buggy)
    try:
        eventually(lambda: runner.stats.events == len(events) and not runner._rows or not worker.alive, 60,
                   "every event handled")
    finally:
        worker.stop.set()
        worker.join(30)
    assert worker.error is None
    assert runner.stats.dead_lettered == 1  # the one write of m2; its deletion folds normally
    assert [r["entry_id"] for r in listing(store, "memory", "acme")] == ["m1"]
    assert "a bug in the fold" in dead_letters(settings)[0].data["reason"]
