"""The dead-letter path: a record no consumer can process is written to `dead_letters` with the reason,
so the consumer moves on without losing it and without stalling its partition.

A dead letter keeps at most `EXCERPT_BYTES` of the value (a record near the broker's size limit could not
be copied whole into another record) plus its source position, from which `redrive` reads it whole.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import Message

from core.identifiers import is_identifier
from core.settings import Settings
from topics.events import Event
from topics.producer import EventProducer

UNKNOWN_COMPANY = "unknown"
EXCERPT_BYTES = 64 * 1024
REASON_CHARS = 4_000


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
        """A record that decoded but could not be processed further (a fold, a store refusal, a handler)."""
        return cls(topic, partition, offset, key, value, str(error), type(error).__name__)

    @property
    def company_id(self) -> str:
        """Best effort: the company is the first part of every catalog key, when that part is an identifier."""
        if not self.key:
            return UNKNOWN_COMPANY
        first = self.key.split(b"/", 1)[0].decode("utf-8", errors="replace")
        return first if is_identifier(first) else UNKNOWN_COMPANY


def dead_letter_event(rejected: Rejected, consumer_group: str | None) -> Event:
    """The `dead_letter` event of a rejected record: bounded in size whatever the record's size."""
    value = rejected.value
    size = len(value) if value is not None else None
    truncated = value is not None and len(value) > EXCERPT_BYTES
    key = rejected.key[:1024] if rejected.key is not None else None
    return Event.new(
        "dead_letter",
        rejected.company_id,
        source_topic=rejected.topic,
        source_partition=rejected.partition,
        source_offset=rejected.offset,
        source_key=key,
        payload=value[:EXCERPT_BYTES] if truncated and value is not None else value,
        payload_size=size,
        payload_truncated=truncated,
        reason=rejected.reason[:REASON_CHARS],
        error_type=rejected.error_type,
        consumer_group=consumer_group,
    )


class DeadLetters:
    """Writes rejected records to the dead-letter topic; `flush` before committing the source offsets."""

    def __init__(self, settings: Settings, consumer_group: str | None, producer: EventProducer | None = None) -> None:
        self.consumer_group = consumer_group
        self._producer = producer or EventProducer(settings)
        self.count = 0

    def send(self, rejected: Rejected) -> None:
        self._producer.produce(dead_letter_event(rejected, self.consumer_group))
        self.count += 1

    def flush(self) -> None:
        self._producer.flush()


class Skipped:
    """The reject sink of read-only tools (CLI listings, followers of a topic): the consumer groups that own
    a topic dead-letter what they cannot take; a reader only counts what it skipped."""

    def __init__(self) -> None:
        self.count = 0

    def send(self, rejected: Rejected) -> None:
        self.count += 1

    def flush(self) -> None:
        return None
