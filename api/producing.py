"""Producing from request handlers: a route awaits the broker's acknowledgement of its events before it answers
202, without blocking the event loop — one shared idempotent producer, its delivery callbacks served by a thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from confluent_kafka import KafkaError, Message

from core.settings import Settings
from topics.errors import DeliveryError
from topics.events import Event
from topics.producer import EventProducer


class AsyncProducer:
    """`await send(events)` returns once every event is acknowledged (acks=all), else raises `DeliveryError`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer = EventProducer(settings, **{"linger.ms": 1})
        self._lock = threading.Lock()  # produce() from the loop, poll() from the server thread
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="api-producer", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._producer.serve(0.05)

    async def send(self, events: Sequence[Event], tombstones: Sequence[Event] = ()) -> None:
        """Produce `events`, then a tombstone for each of `tombstones`' keys (a deletion on a compacted topic)."""
        loop = asyncio.get_running_loop()
        records = [(e, False) for e in events] + [(e, True) for e in tombstones]
        futures = [loop.create_future() for _ in records]
        for (event, tombstone), future in zip(records, futures, strict=True):
            def done(err: KafkaError | None, _msg: Message, future: asyncio.Future[None] = future) -> None:
                loop.call_soon_threadsafe(_settle, future, err)
            with self._lock:
                if tombstone:
                    self._producer.tombstone(event, on_delivery=done)
                else:
                    self._producer.produce(event, on_delivery=done)
        try:
            await asyncio.wait_for(asyncio.gather(*futures), timeout=3 * self.settings.kafka_timeout_s)
        except TimeoutError:
            raise DeliveryError(f"the broker at {self.settings.kafka_bootstrap} did not acknowledge within "
                                f"{3 * self.settings.kafka_timeout_s:.0f}s") from None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        try:
            self._producer.flush(self.settings.kafka_timeout_s)
        except DeliveryError:
            pass


def _settle(future: asyncio.Future[None], err: KafkaError | None) -> None:
    if future.done():
        return
    if err is None:
        future.set_result(None)
    else:
        future.set_exception(DeliveryError(f"delivery failed: {err.str()}"))
