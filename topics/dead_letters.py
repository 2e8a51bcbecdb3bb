"""The dead-letter path: a record no consumer can process is written to `dead_letters` with the reason,
so the consumer moves on without losing it and without stalling its partition."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import Message

from cda.settings import Settings
from topics.events import Event
from topics.producer import EventProducer

UNKNOWN_COMPANY = "unknown"


@dataclass(frozen=True)
class Rejected:
    """A source record and why it was rejected."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    error_type: str

    @classmethod
    def of(cls, msg: Message, error: Exception) -> Rejected:
        return cls(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), str(error), type(error).__name__)

    @classmethod
    def of_received(cls, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
                    error: Exception) -> Rejected:
        """A record that decoded but could not be processed further (a fold, a store refusal)."""
        return cls(topic, partition, offset, key, value, str(error), type(error).__name__)

    @property
    def company_id(self) -> str:
        """Best effort: the company is the first part of every catalog key."""
        if not self.key:
            return UNKNOWN_COMPANY
        return self.key.split(b"/", 1)[0].decode("utf-8", errors="replace") or UNKNOWN_COMPANY


class DeadLetters:
    """Writes rejected records to the dead-letter topic; `flush` before committing the source offsets."""

    def __init__(self, settings: Settings, consumer_group: str | None, producer: EventProducer | None = None) -> None:
        self.consumer_group = consumer_group
        self._producer = producer or EventProducer(settings)
        self.count = 0

    def send(self, rejected: Rejected) -> None:
        self._producer.produce(Event.new(
            "dead_letter",
            rejected.company_id,
            source_topic=rejected.topic,
            source_partition=rejected.partition,
            source_offset=rejected.offset,
            source_key=rejected.key,
            payload=rejected.value,
            reason=rejected.reason,
            error_type=rejected.error_type,
            consumer_group=self.consumer_group,
        ))
        self.count += 1

    def flush(self) -> None:
        self._producer.flush()
