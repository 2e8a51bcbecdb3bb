"""Events recorded from async code: produced through the project's producer, with an awaitable
acknowledgement when the loop must know an event is on the log before it acts (a call is sent only after
its `tool_call_requested` is acknowledged). A small thread serves the producer's delivery callbacks."""

from __future__ import annotations

import asyncio
import threading

from confluent_kafka import KafkaError, Message

from core.settings import Settings
from topics.errors import DeliveryError
from topics.events import Event
from topics.producer import EventProducer


class AsyncEmitter:
    """`await emit(event, wait)`; with `wait`, returns once the broker acknowledged it (or raises DeliveryError)."""

    def __init__(self, settings: Settings, producer: EventProducer | None = None) -> None:
        self.settings = settings
        self.producer = producer or EventProducer(settings, **{"linger.ms": 1})
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="emitter-deliveries", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self.producer.serve(0)
            self._stop.wait(0.002)

    async def emit(self, event: Event, wait: bool = False) -> None:
        if not wait:
            with self._lock:
                self.producer.produce(event)
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def delivered(err: KafkaError | None, msg: Message) -> None:
            def settle() -> None:
                if done.done():
                    return
                if err is not None:
                    done.set_exception(DeliveryError(f"{msg.topic()}: {err.str()} ({event.type} of job "
                                                     f"{event.data.get('job_id')})"))
                else:
                    done.set_result(None)
            loop.call_soon_threadsafe(settle)

        with self._lock:
            self.producer.produce(event, on_delivery=delivered)
        bound = max(3 * self.settings.kafka_timeout_s, 5.0) + 5.0
        try:
            await asyncio.wait_for(done, bound)
        except TimeoutError:
            raise DeliveryError(f"{event.type} not acknowledged by {self.settings.kafka_bootstrap} within {bound:.0f}s") \
                from None

    def flush(self) -> None:
        with self._lock:
            self.producer.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.producer.flush()
