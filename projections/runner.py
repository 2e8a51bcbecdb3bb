"""Runs a projection: poll events, fold them into rows, store a batch, then commit the offsets.

Batches close on size or on time. A store outage stops commits and retries with backoff, so nothing is
lost; rows are idempotent, so what is redelivered afterwards is not doubled. Events a projection cannot
fold, and rows the store refuses, go to the dead-letter topic with the reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from cda.settings import Settings
from projections.errors import FoldError, StoreError, StoreUnavailable
from projections.model import Projection
from projections.store import ProjectionStore
from topics.consumer import EventConsumer, Received
from topics.dead_letters import Rejected
from topics.serde import serde_for

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
        self.consumer = EventConsumer(settings, group_id or projection.group_id)
        self.serde = serde_for(registry_url=settings.schema_registry_url)
        self.stats = RunnerStats()
        self._rows: list[tuple[Any, ...]] = []
        self._sources: list[Received] = []
        self._batch_started = 0.0

    def start(self) -> None:
        """Join the projection's consumer group on its topics."""
        self.consumer.subscribe(list(self.projection.topics))

    def run(self, stop: threading.Event) -> None:
        """Fold until `stop` is set; the last batch is stored and committed before returning."""
        self.start()
        try:
            while not stop.is_set():
                self.step(stop)
            self.flush(stop)
        finally:
            self.consumer.close()

    def step(self, stop: threading.Event) -> None:
        wait = self.flush_interval_s if not self._rows else max(0.0, self._deadline() - time.monotonic())
        for received in self.consumer.poll(min(wait, self.flush_interval_s), max_records=self.batch_size):
            self.stats.events += 1
            try:
                row = self.projection.row(received)
            except FoldError as exc:
                self._dead_letter(received, exc)
                continue
            if row is None:
                self.stats.skipped += 1
                continue
            if not self._rows:
                self._batch_started = time.monotonic()
            self._rows.append(row)
            self._sources.append(received)
        if self._rows and (len(self._rows) >= self.batch_size or time.monotonic() >= self._deadline()):
            self.flush(stop)

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
        backoff = 0.5
        while True:
            try:
                self.store.insert(self.projection.table, self._rows, self.projection.columns)
                return True
            except StoreUnavailable as exc:
                self.stats.store_failures += 1
                log.warning("projection %s: store unavailable, retrying in %.1fs: %s", self.projection.name, backoff, exc)
                if stop.wait(backoff):
                    return False
                backoff = min(backoff * 2, self.max_backoff_s)
            except StoreError:
                self._store_one_by_one()
                return True

    def _store_one_by_one(self) -> None:
        """The store refused the batch: keep every row it takes, dead-letter the ones it refuses."""
        kept_rows, kept_sources = [], []
        for row, source in zip(self._rows, self._sources):
            try:
                self.store.insert(self.projection.table, [row], self.projection.columns)
            except StoreError as exc:
                self._dead_letter(source, exc)
                continue
            kept_rows.append(row)
            kept_sources.append(source)
        self._rows, self._sources = kept_rows, kept_sources

    def _dead_letter(self, received: Received, error: Exception) -> None:
        payload = self.serde.encode(received.event, received.topic)
        self.consumer.dead_letters.send(Rejected.of_received(
            received.topic, received.partition, received.offset, received.key, payload, error))
        self.stats.dead_lettered += 1
