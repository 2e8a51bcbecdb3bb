"""Runs a projection: poll events, fold them into rows, store a batch, then commit the offsets.

Batches close on size or on time. A transient store failure (down, busy, too many parts) stops commits
and retries with backoff, so nothing is lost; rows are idempotent, so what is redelivered afterwards is
not doubled. Anything deterministic about one record (an event the projection cannot fold, a row the
store refuses) sends that record to the dead-letter topic with the reason, and the runner goes on. A
broker outage ends the consumer session; `run` joins the group again and is handed back what it had not
committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from core.retry import Stopped, outlast
from core.settings import Settings
from core.workers import run_until_stopped
from projections.batches import insert_keeping_good
from projections.model import Projection
from projections.store import ProjectionStore
from topics.consumer import EventConsumer, Received
from topics.handling import handle_each, reject

log = logging.getLogger(__name__)


@dataclass
class RunnerStats:
    """Counters of one runner, and recent lag samples (store time minus event time, ms)."""

    events: int = 0
    rows: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    store_failures: int = 0
    batches: int = 0
    rejoins: int = 0
    lag_ms: deque[float] = field(default_factory=lambda: deque(maxlen=200_000))


class ProjectionRunner:
    """One consumer group folding its topics into one facts table."""

    def __init__(
        self,
        settings: Settings,
        store: ProjectionStore,
        projection: Projection,
        *,
        batch_size: int = 5_000,
        flush_interval_s: float = 0.25,
        group_id: str | None = None,
        max_backoff_s: float = 10.0,
    ) -> None:
        self.settings = settings
        self.store = store
        self.projection = projection
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_backoff_s = max_backoff_s
        self.group_id = group_id or projection.group_id
        self.consumer = EventConsumer(settings, self.group_id)
        self.stats = RunnerStats()
        self._rows: list[tuple[Any, ...]] = []
        self._sources: list[Received] = []
        self._batch_started = 0.0
        self._closed = False

    def start(self) -> None:
        """Join the projection's consumer group on its topics."""
        if self._closed:  # a session ended (an outage): a fresh consumer joins the group again
            self.consumer = EventConsumer(self.settings, self.group_id)
            self._closed = False
            self.stats.rejoins += 1
        self.consumer.subscribe(list(self.projection.topics))

    def run(self, stop: threading.Event) -> None:
        """Fold until `stop` is set, re-joining after broker outages; the last batch is stored and committed."""
        run_until_stopped(stop, self._session, name=f"projection {self.projection.name}")

    def _session(self, stop: threading.Event) -> None:
        self._rows, self._sources = [], []  # not committed: the group hands these records back
        try:
            self.start()
            while not stop.is_set():
                self.step(stop)
            self.flush(stop)
        finally:
            self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self.consumer.close()
            except Exception as exc:  # closing after an outage may fail; the next session opens a new one
                log.warning("projection %s: closing its consumer failed: %s", self.projection.name, exc)

    def step(self, stop: threading.Event) -> None:
        wait = self.flush_interval_s if not self._rows else max(0.0, self._deadline() - time.monotonic())
        batch = self.consumer.poll(min(wait, self.flush_interval_s), max_records=self.batch_size)
        self.stats.events += len(batch)
        self.stats.dead_lettered += handle_each(self.consumer, batch, self._fold)
        if self._rows and (len(self._rows) >= self.batch_size or time.monotonic() >= self._deadline()):
            self.flush(stop)

    def _fold(self, received: Received) -> None:
        row = self.projection.row(received)  # any failure but a transient one dead-letters this record
        if row is None:
            self.stats.skipped += 1
            return
        if not self._rows:
            self._batch_started = time.monotonic()
        self._rows.append(row)
        self._sources.append(received)

    def flush(self, stop: threading.Event) -> None:
        """Store the batch (retrying through outages), then commit everything polled so far."""
        if self._rows and not self._store_with_retry(stop):
            return  # stopping during an outage: commit nothing, the batch is read again next time
        now = datetime.now(timezone.utc)
        self.stats.lag_ms.extend((now - r.event.occurred_at).total_seconds() * 1000 for r in self._sources)
        self.stats.rows += len(self._rows)
        self.stats.batches += 1 if self._rows else 0
        self._rows, self._sources = [], []
        self.consumer.commit()

    def _deadline(self) -> float:
        return self._batch_started + self.flush_interval_s

    def _store_with_retry(self, stop: threading.Event) -> bool:
        """Store the batch; rows the store refuses are dead-lettered and dropped from it. False: stopped."""
        def counted(_: BaseException) -> None:
            self.stats.store_failures += 1

        try:
            refused = outlast(lambda: insert_keeping_good(self.store, self.projection.table, self._rows, self.projection.columns),
                              f"projection {self.projection.name}: store unavailable, retrying", stop,
                              max_s=self.max_backoff_s, on_outage=counted)
        except Stopped:
            return False
        for index, error in refused:
            log.warning("projection %s: the store refused the row of %s[%d]@%d: %s", self.projection.name,
                        self._sources[index].topic, self._sources[index].partition, self._sources[index].offset, error)
            reject(self.consumer.dead_letters, self._sources[index], error)
        self.stats.dead_lettered += len(refused)
        gone = {index for index, _ in refused}
        self._rows = [row for i, row in enumerate(self._rows) if i not in gone]
        self._sources = [src for i, src in enumerate(self._sources) if i not in gone]
        return True
