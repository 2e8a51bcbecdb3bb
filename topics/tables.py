"""A compacted topic read as a live table: a follower thread folds it from its beginning and then keeps up.
`wait_caught_up` lets a worker start only once it has seen everything that was there at start-up. Records
that do not decode are logged and skipped (their topic's consumer groups dead-letter them, once)."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable

from core.settings import Settings
from core.workers import WorkerThread, run_until_stopped, wait_until
from topics.consumer import EventConsumer
from topics.dead_letters import Rejected
from topics.events import Event
from topics.positions import Position

log = logging.getLogger(__name__)


class _LogRejects:
    """A follower reads without a group: records that do not decode are the projections' to dead-letter."""

    def send(self, rejected: Rejected) -> None:
        log.warning("follower skipped %s[%d]@%d: %s", rejected.topic, rejected.partition, rejected.offset, rejected.reason)

    def flush(self) -> None:
        return None


class TopicTable:
    """Folds one compacted catalog topic with `apply`, from its beginning, forever (until stopped)."""

    def __init__(self, settings: Settings, topic: str, apply: Callable[[Event], None]) -> None:
        self.settings = settings
        self.topic = topic
        self._apply = apply
        self._lock = threading.Lock()
        self.caught_up = threading.Event()
        self.worker: WorkerThread | None = None

    def start(self, stop: threading.Event) -> TopicTable:
        self.worker = WorkerThread(f"table-{self.topic}", lambda s: run_until_stopped(s, self._follow, name=self.topic),
                                   stop).start()
        return self

    def _follow(self, stop: threading.Event) -> None:
        with EventConsumer(self.settings, f"cda-table-{uuid.uuid4()}", dead_letters=_LogRejects()) as consumer:
            consumer.assign(self.topic, Position.beginning(), until_end=True, follow=True)
            while not stop.is_set():
                batch = consumer.poll(0.2)
                with self._lock:
                    for received in batch:
                        try:
                            self._apply(received.event)
                        except Exception as exc:  # noqa: BLE001 - a bad fact must not stop the table
                            log.warning("table %s skipped %s: %s", self.topic, received.event.event_id, exc)
                if consumer.finished:
                    self.caught_up.set()

    def wait_caught_up(self, timeout_s: float) -> bool:
        """True once read to the end the topic had at start; False when the time is up or the follower died (its
        error, e.g. the topic missing, is `worker.error`) — a dead follower is not waited out."""
        wait_until(lambda: self.caught_up.is_set() or (self.worker is not None and not self.worker.alive), timeout_s)
        return self.caught_up.is_set()

    @property
    def lock(self) -> threading.Lock:
        return self._lock
