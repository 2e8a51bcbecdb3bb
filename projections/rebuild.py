"""Rebuild a view from the topics into a fresh table and swap it in atomically, while events keep arriving.

1. Create `<table>__rebuild` like the live table. With `since`, first copy the live rows that lie before
   the start positions (they are not re-read).
2. Fold the topics from the start positions to the end offsets taken now.
3. `EXCHANGE TABLES` swaps the fresh table in; the views read it from then on.
4. Copy the rows the live projection stored past those end offsets during the rebuild into the new live
   table (twice, 0.2 s apart, to catch inserts in flight); rows are deduplicated by event id, so overlap is harmless.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from confluent_kafka import Consumer

from cda.settings import Settings
from projections.model import Projection
from projections.store import ProjectionStore
from topics.connection import client_config
from topics.consumer import Received
from topics.positions import Position
from topics.replay import batches_in, range_bounds, range_size
from topics.serde import serde_for

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RebuildResult:
    table: str
    events: int
    rows: int
    carried_over: int  # rows kept from before `since`
    caught_up: int  # rows the live projection stored during the rebuild, copied across


def _position_filter(bounds: list[tuple[str, int, int]], before: bool) -> str:
    """SQL condition on (src_topic, src_partition, src_offset): before (or at/after) each partition's bound."""
    op = "<" if before else ">="
    parts = [f"(src_topic = '{t}' AND src_partition = {p} AND src_offset {op} {o})" for t, p, o in bounds]
    return " OR ".join(parts) or "0"


def rebuild(
    settings: Settings, store: ProjectionStore, projection: Projection, since: datetime | None = None,
    progress: Progress | None = None, batch_size: int = 20_000,
) -> RebuildResult:
    live, fresh = projection.table, f"{projection.table}__rebuild"
    store.command(f"DROP TABLE IF EXISTS {fresh}")
    store.command(f"CREATE TABLE {fresh} AS {live}")
    serde = serde_for(registry_url=settings.schema_registry_url)
    consumer = Consumer(client_config(settings, **{"group.id": f"cda-rebuild-{uuid.uuid4()}", "enable.auto.commit": False}))
    try:
        start = Position.at_time(since) if since else Position.beginning()
        ranges = [b for name in projection.topics for b in range_bounds(settings, consumer, name, start)]
        carried = 0
        if since is not None:
            starts = [(tp.topic, tp.partition, tp.offset) for tp, _ in ranges]
            store.command(f"INSERT INTO {fresh} SELECT * FROM {live} FINAL WHERE {_position_filter(starts, before=True)}")
            carried = store.query(f"SELECT count() FROM {fresh}")[0][0]
        total = range_size(ranges)
        events = rows_written = 0
        rows: list[tuple] = []  # type: ignore[type-arg]
        for batch in batches_in(consumer, ranges, settings.kafka_timeout_s, batch_size=5_000):
            for msg in batch:
                events += 1
                try:
                    received = Received(serde.decode(msg.value() or b"", msg.topic()), msg.topic(), msg.partition(),
                                        msg.offset(), msg.timestamp()[1], msg.key())
                    row = projection.row(received)
                except Exception:  # the live projection dead-lettered these already; a rebuild skips them
                    continue
                if row is not None:
                    rows.append(row)
            if len(rows) >= batch_size:
                store.insert(fresh, rows, projection.columns)
                rows_written += len(rows)
                rows = []
            if progress is not None:
                progress(events, total)
        store.insert(fresh, rows, projection.columns)
        rows_written += len(rows)
        store.command(f"EXCHANGE TABLES {live} AND {fresh}")
        after = _position_filter([(tp.topic, tp.partition, end) for tp, end in ranges], before=False)
        caught_up = 0
        for attempt in range(2):  # the second pass catches an insert that was in flight during the first
            if attempt:
                time.sleep(0.2)
            caught_up = store.query(f"SELECT count() FROM {fresh} WHERE {after}")[0][0]
            store.command(f"INSERT INTO {live} SELECT * FROM {fresh} WHERE {after}")
        store.command(f"DROP TABLE IF EXISTS {fresh}")
        return RebuildResult(live, events, rows_written, carried, caught_up)
    finally:
        consumer.close()
