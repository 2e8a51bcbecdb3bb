"""An idempotent, acks=all producer of events whose delivery errors are raised, not logged and lost."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from core.settings import Settings
from topics.catalog import topic_of
from topics.connection import client_config, cluster_metadata, topic_name
from topics.errors import DeliveryError
from topics.events import Event
from topics.partitioning import PARTITIONER
from topics.serde import Serde, serde_from

EVENT_TYPE_HEADER = "cda.event_type"


class EventProducer:
    """Encodes events with the serde and writes them to their catalog topic, keyed by company.

    Use as a context manager: leaving the block flushes, and raises if any record was not acknowledged.
    """

    def __init__(self, settings: Settings, serde: Serde | None = None, **config: Any) -> None:
        self.settings = settings
        self.serde = serde or serde_from(settings)
        timeout_ms = int(settings.kafka_timeout_s * 1000)
        self._producer = Producer(client_config(
            settings,
            **{
                "enable.idempotence": True,
                "partitioner": PARTITIONER,  # CRC-32 of the key: readers can find a company's partition
                "acks": "all",
                "linger.ms": 5,
                "message.timeout.ms": max(3 * timeout_ms, 5_000),
                **config,
            },
        ))
        self._errors: list[str] = []
        self.delivered = 0
        self._queued = 0

    def check_reachable(self) -> None:
        """Fail fast, naming the bootstrap address, when the broker does not answer."""
        cluster_metadata(self.settings)

    def produce(self, event: Event, timestamp_ms: int | None = None,
                on_delivery: Callable[[KafkaError | None, Message], None] | None = None) -> None:
        """Encode `event` and queue it for its catalog topic; errors surface at `flush`.

        `timestamp_ms` sets the record's timestamp (default: now), e.g. to place records in time for a replay.
        """
        spec = topic_of(event.type)
        topic = topic_name(self.settings, spec.name)
        value = self.serde.encode(event, topic)
        self.produce_raw(topic, spec.key_for(event), value, [(EVENT_TYPE_HEADER, event.type.encode())], timestamp_ms,
                         on_delivery)

    def tombstone(self, event: Event, on_delivery: Callable[[KafkaError | None, Message], None] | None = None) -> None:
        """Queue a tombstone (no value) for `event`'s key on its compacted topic: compaction then drops every
        record of that key, so a deleted entry's text leaves the log too, not only the views."""
        spec = topic_of(event.type)
        if "compact" not in spec.cleanup_policy:
            raise ValueError(f"topic {spec.name} is not compacted; a tombstone there deletes nothing")
        self.produce_raw(topic_name(self.settings, spec.name), spec.key_for(event), None, on_delivery=on_delivery)

    def produce_many(self, events: Iterable[Event], timestamp_ms: int | None = None) -> int:
        count = 0
        for event in events:
            self.produce(event, timestamp_ms)
            count += 1
        return count

    def produce_raw(
        self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]] | None = None,
        timestamp_ms: int | None = None, on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
    ) -> None:
        """Queue already-encoded bytes (replay, dead letters, benchmarks); `on_delivery` also hears the outcome."""
        extra = {"timestamp": timestamp_ms} if timestamp_ms is not None else {}
        callback = self._on_delivery
        if on_delivery is not None:
            def callback(err: KafkaError | None, msg: Message) -> None:
                self._on_delivery(err, msg)
                on_delivery(err, msg)
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=callback, **extra)
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                self._producer.poll(0.1)
        self._queued += 1
        if self._queued % 256 == 0:  # serve delivery callbacks now and then, not per record
            self._producer.poll(0)

    def serve(self, timeout_s: float = 0.0) -> int:
        """Serve delivery callbacks (what `flush` does without waiting for everything)."""
        return self._producer.poll(timeout_s)

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait for every queued record; raise `DeliveryError` if any failed or did not finish in time."""
        bound = timeout_s if timeout_s is not None else 4 * self.settings.kafka_timeout_s
        remaining = self._producer.flush(bound)
        errors, self._errors = self._errors, []
        if remaining:
            errors.append(f"{remaining} record(s) not acknowledged by {self.settings.kafka_bootstrap} within {bound:.0f}s")
        if errors:
            shown = "; ".join(errors[:5]) + (f"; and {len(errors) - 5} more" if len(errors) > 5 else "")
            raise DeliveryError(f"delivery failed: {shown}")

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.flush()
        else:
            self._producer.flush(self.settings.kafka_timeout_s)

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err.str()}")
        else:
            self.delivered += 1
