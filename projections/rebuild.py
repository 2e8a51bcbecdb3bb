"""Rebuild a view from the topics into a fresh table and swap it in atomically, while events keep arriving.

1. Create `<table>__rebuild` like the live table. With `since`, first copy the live rows that lie before
   the start positions (they are not re-read).
2. Fold the topics from the start positions to the end offsets taken now. What cannot become a row is
   counted by reason (`RebuildResult.skipped`), never silently dropped; a transient failure stops the rebuild.
3. `EXCHANGE TABLES` swaps the fresh table in; the views and every insert that starts from now on use it.
4. The fence: an insert the live runner started before the swap may still land in the old table. Every
   insert into this table that the engine lists as running (`system.processes`) just after the swap is
   waited for; inserts not listed then resolve the table name later, so they write into the new table.
5. Only then are the rows the live projection stored outside the rebuilt range (past the end offsets, or
   before the start positions but after the copy of step 1) copied from the old table, which is dropped.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from core.errors import is_transient
from core.retry import RetryPolicy
from core.settings import Settings
from core.workers import wait_until
from projections.batches import insert_keeping_good
from projections.errors import ProjectionError
from projections.model import Projection
from projections.store import ProjectionStore
from topics.connection import client_config
from topics.consumer import Received
from topics.positions import Position
from topics.replay import batches_in, range_bounds, range_size
from topics.serde import serde_from

Progress = Callable[[int, int], None]
STORE_RETRY = RetryPolicy(attempts=8, deadline_s=120.0, backoff_s=0.5, max_backoff_s=10.0)
INSERT_DRAIN_TIMEOUT_S = 300.0  # how long the swap waits for live inserts into the old table to finish
# A copy from before the start positions is repeated for rows stored up to this long before it began
# (an insert in flight during the copy has an earlier `stored_at` than its commit).
CARRY_MARGIN_S = 300

# why an event read during a rebuild gave no row
NOT_AN_EVENT = "not an event"
INVALID = "breaks the contract"
NOT_FOLDED = "cannot be folded"
IGNORED = "ignored by this view"
REFUSED = "refused by the store"


@dataclass(frozen=True)
class RebuildResult:
    table: str
    events: int
    rows: int
    carried_over: int  # rows kept from before `since`
    caught_up: int  # rows the live projection stored during the rebuild, copied across
    skipped: Mapping[str, int] = field(default_factory=dict)  # events that gave no row, by reason

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


def _position_filter(bounds: Sequence[tuple[str, int, int]], before: bool) -> str:
    """SQL condition on (src_topic, src_partition, src_offset): before (or at/after) each partition's bound."""
    op = "<" if before else ">="
    parts = [f"(src_topic = '{t}' AND src_partition = {p} AND src_offset {op} {o})" for t, p, o in bounds]
    return " OR ".join(parts) or "0"


def _unknown_partitions(bounds: Sequence[tuple[str, int, int]]) -> str:
    """Rows of partitions that did not exist when the end offsets were taken (all of them lie past the end)."""
    known = ", ".join(f"('{t}', {p})" for t, p, _ in bounds)
    return f"(src_topic, src_partition) NOT IN ({known})" if known else "1"


class _Folder:
    """Decodes and folds records into rows, counting each record that gives none by reason."""

    def __init__(self, settings: Settings, projection: Projection) -> None:
        self.projection = projection
        self.serde = serde_from(settings)
        self.skipped: Counter[str] = Counter()

    def row(self, msg: Any) -> tuple[Any, ...] | None:
        try:
            event = self.serde.decode(msg.value() or b"", msg.topic())
        except Exception as exc:
            return self._skip(exc, NOT_AN_EVENT)
        try:
            event.check()
        except Exception as exc:
            return self._skip(exc, INVALID)
        received = Received(event, msg.topic(), msg.partition(), msg.offset(), msg.timestamp()[1], msg.key(), msg.value())
        try:
            row = self.projection.row(received)
        except Exception as exc:  # the live projection dead-lettered these already
            return self._skip(exc, NOT_FOLDED)
        if row is None:
            self.skipped[IGNORED] += 1
        return row

    def _skip(self, exc: Exception, reason: str) -> None:
        """Count a record that gives no row; a transient failure is raised instead."""
        if is_transient(exc):  # a registry or network outage: the rebuild must not drop what it could read later
            raise exc
        self.skipped[reason] += 1
        return None


def _store(store: ProjectionStore, table: str, rows: list[tuple[Any, ...]], columns: Sequence[str],
           skipped: Counter[str]) -> int:
    """Insert rows (retrying outages); rows the store refuses are counted. Returns how many were stored."""
    refused = STORE_RETRY.call(lambda _: insert_keeping_good(store, table, rows, columns))
    if refused:
        skipped[REFUSED] += len(refused)
    return len(rows) - len(refused)


def _inserts_running(store: ProjectionStore, table: str) -> set[str]:
    """Query ids of the inserts into `table` (of this database) that the engine is running now."""
    rows = store.query(
        "SELECT query_id FROM system.processes WHERE query_kind = 'Insert' AND current_database = {db:String} "
        "AND positionCaseInsensitive(query, {table:String}) > 0",
        {"db": store.database, "table": table},
    )
    return {r[0] for r in rows}


def _drain_inserts(store: ProjectionStore, table: str) -> None:
    """Wait until every insert into `table` that is running now has finished (the fence of step 4)."""
    running = _inserts_running(store, table)
    if running and not wait_until(lambda: not (running & _inserts_running(store, table)), INSERT_DRAIN_TIMEOUT_S, 0.02):
        raise ProjectionError(f"inserts into {table} still run {INSERT_DRAIN_TIMEOUT_S:.0f}s after the rebuild swapped "
                              f"it; the old rows are kept in {table}__rebuild (query ids {sorted(running)})")


def rebuild(
    settings: Settings, store: ProjectionStore, projection: Projection, since: datetime | None = None,
    progress: Progress | None = None, batch_size: int = 20_000,
) -> RebuildResult:
    live, fresh = projection.table, f"{projection.table}__rebuild"
    store.command(f"DROP TABLE IF EXISTS {fresh}")
    store.command(f"CREATE TABLE {fresh} AS {live}")
    _inserts_running(store, live)  # the fence needs system.processes: fail now, before anything is swapped
    folder = _Folder(settings, projection)
    consumer = Consumer(client_config(settings, **{"group.id": f"cda-rebuild-{uuid.uuid4()}", "enable.auto.commit": False}))
    swapped = False
    try:
        start = Position.at_time(since) if since else Position.beginning()
        ranges: list[tuple[TopicPartition, int]] = [
            b for name in projection.topics for b in range_bounds(settings, consumer, name, start)]
        starts = [(tp.topic, tp.partition, tp.offset) for tp, _ in ranges]
        ends = [(tp.topic, tp.partition, end) for tp, end in ranges]
        carried, carried_from = 0, ""
        if since is not None:
            now = store.query("SELECT toString(now64(3, 'UTC'))")[0][0]
            carried_from = f"toDateTime64('{now}', 3, 'UTC') - INTERVAL {CARRY_MARGIN_S} SECOND"
            store.command(f"INSERT INTO {fresh} SELECT * FROM {live} FINAL WHERE {_position_filter(starts, before=True)}")
            carried = store.query(f"SELECT count() FROM {fresh}")[0][0]
        total = range_size(ranges)
        events = rows_written = 0
        rows: list[tuple[Any, ...]] = []
        for batch in batches_in(consumer, ranges, settings.kafka_timeout_s, batch_size=5_000):
            for msg in batch:
                events += 1
                row = folder.row(msg)
                if row is not None:
                    rows.append(row)
            if len(rows) >= batch_size:
                rows_written += _store(store, fresh, rows, projection.columns, folder.skipped)
                rows = []
            if progress is not None:
                progress(events, total)
        rows_written += _store(store, fresh, rows, projection.columns, folder.skipped)
        store.command(f"EXCHANGE TABLES {live} AND {fresh}")
        swapped = True
        _drain_inserts(store, live)
        outside = [f"({_position_filter(ends, before=False)})", _unknown_partitions(ends)]
        if since is not None:  # rows a lagging live runner stored before the start positions after step 1
            before = _position_filter(starts, before=True)
            outside.append(
                f"(({before}) AND stored_at >= {carried_from} AND (src_topic, src_partition, src_offset) NOT IN "
                f"(SELECT src_topic, src_partition, src_offset FROM {live} WHERE ({before}) AND stored_at >= {carried_from}))")
        condition = " OR ".join(outside)
        caught_up = store.query(f"SELECT count() FROM {fresh} WHERE {condition}")[0][0]
        store.command(f"INSERT INTO {live} SELECT * FROM {fresh} WHERE {condition}")
        store.command(f"DROP TABLE IF EXISTS {fresh}")
        return RebuildResult(live, events, rows_written, carried, caught_up, dict(folder.skipped))
    except BaseException:
        if not swapped:  # the live table is untouched; the half-built one goes
            try:
                store.command(f"DROP TABLE IF EXISTS {fresh}")
            except Exception:
                pass
        raise
    finally:
        consumer.close()
