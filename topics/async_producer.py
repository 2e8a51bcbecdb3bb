"""Producing from async code (the agents' loop, the REST API's routes): one idempotent `EventProducer`, its
delivery callbacks served by a small thread, and an awaitable acknowledgement when the caller must know an
event is on the log before it acts — a tool call is sent only after its `tool_call_requested` is
acknowledged; a route answers 202 only once its events are. One delivery bound for both (`delivery_bound_s`)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence

from confluent_kafka import KafkaError, Message

from core.settings import Settings
from topics.errors import DeliveryError
from topics.events import Event
from topics.producer import EventProducer

log = logging.getLogger(__name__)


def delivery_bound_s(settings: Settings) -> float:
    """How long an acknowledgement is awaited: three broker timeouts (a leader election), at least ten seconds."""
    return max(3 * settings.kafka_timeout_s, 5.0) + 5.0


class AsyncProducer:
    """`await send(events)` / `await emit(event, wait=True)` return once the broker acknowledged (acks=all),
    else raise `DeliveryError` naming the event; `emit(event)` only queues it."""

    def __init__(self, settings: Settings, producer: EventProducer | None = None, name: str = "async-producer") -> None:
        self.settings = settings
        self.producer = producer or EventProducer(settings, **{"linger.ms": 1})
        self._lock = threading.Lock()  # the producer's own bookkeeping is not thread-safe: produce and serve take turns
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self.producer.serve(0)
            self._stop.wait(0.002)

    async def emit(self, event: Event, wait: bool = False) -> None:
        if wait:
            await self.send([event])
            return
        with self._lock:
            self.producer.produce(event)

    async def send(self, events: Sequence[Event], tombstones: Sequence[Event] = ()) -> None:
        """Produce `events`, then a tombstone for each of `tombstones`' keys (a deletion on a compacted topic),
        and wait for every acknowledgement."""
        loop = asyncio.get_running_loop()
        records = [(e, False) for e in events] + [(e, True) for e in tombstones]
        futures = [loop.create_future() for _ in records]
        for (event, tombstone), future in zip(records, futures, strict=True):
            def delivered(err: KafkaError | None, msg: Message, future: asyncio.Future[None] = future,
                          event: Event = event) -> None:
                loop.call_soon_threadsafe(_settle, future, err, msg, event)
            with self._lock:
                if tombstone:
                    self.producer.tombstone(event, on_delivery=delivered)
                else:
                    self.producer.produce(event, on_delivery=delivered)
        bound = delivery_bound_s(self.settings)
        try:
            await asyncio.wait_for(asyncio.gather(*futures), bound)
        except TimeoutError:
            kinds = ", ".join(sorted({e.type for e, _ in records}))
            raise DeliveryError(f"{kinds} not acknowledged by {self.settings.kafka_bootstrap} within {bound:.0f}s") from None

    def flush(self) -> None:
        with self._lock:
            self.producer.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        try:
            self.producer.flush(self.settings.kafka_timeout_s)
        except DeliveryError as exc:  # at shutdown: what was not acknowledged is redone from the uncommitted input
            log.warning("events still unacknowledged at close: %s", exc)


def _settle(future: asyncio.Future[None], err: KafkaError | None, msg: Message, event: Event) -> None:
    if future.done():
        return
    if err is None:
        future.set_result(None)
    else:
        future.set_exception(DeliveryError(f"{msg.topic()}: {err.str()} ({event.type} of {event.company_id})"))
