"""Dead letters, listed and driven again: a dead-lettered record is produced again, byte for byte, to the
topic it came from, so the consumers meet it again (after a fix, or after a rolling upgrade in which an
old consumer met a newer schema version). Records whose dead letter kept only an excerpt are read whole
from their source position."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from core.settings import Settings
from topics.connection import client_config, topic_name
from topics.consumer import EventConsumer
from topics.dead_letters import Skipped
from topics.errors import TopicsError
from topics.events import Event
from topics.positions import Position
from topics.producer import EventProducer

REDRIVEN_FROM_HEADER = "cda.redriven_from"


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters: by source topic (catalog name), consumer group, error type, company."""

    source_topic: str | None = None
    consumer_group: str | None = None
    error_type: str | None = None
    company_id: str | None = None

    def matches(self, settings: Settings, letter: Event) -> bool:
        source = str(letter["source_topic"]).removeprefix(settings.topic_prefix)
        return ((self.source_topic is None or source == self.source_topic)
                and (self.consumer_group is None or letter.data.get("consumer_group") == self.consumer_group)
                and (self.error_type is None or letter["error_type"] == self.error_type)
                and (self.company_id is None or letter.company_id == self.company_id))


def dead_letters(settings: Settings, start: Position, which: DeadLetterFilter) -> Iterator[tuple[int, Event]]:
    """(offset, dead_letter) pairs from `start` to today's end of the dead-letter topic that match `which`."""
    with EventConsumer(settings, f"cda-dead-letters-{uuid.uuid4()}", dead_letters=Skipped()) as consumer:
        consumer.assign("dead_letters", start, until_end=True)
        for received in consumer:
            if which.matches(settings, received.event):
                yield received.offset, received.event


def original_value(settings: Settings, letter: Event, reader: Consumer) -> bytes | None:
    """The rejected record's whole value: the payload, or (for an excerpt) the record at its source position."""
    if not letter.data.get("payload_truncated"):
        return letter.data.get("payload")
    tp = TopicPartition(str(letter["source_topic"]), int(letter["source_partition"]), int(letter["source_offset"]))
    reader.assign([tp])
    msg = reader.poll(settings.kafka_timeout_s)
    if msg is None or msg.error() is not None or msg.offset() != tp.offset:
        raise TopicsError(f"{tp.topic}[{tp.partition}]@{tp.offset} is no longer in the log (retention): "
                          "only the dead letter's excerpt is left")
    return msg.value()


def redrive(settings: Settings, start: Position, which: DeadLetterFilter,
            progress: Callable[[int], None] | None = None) -> int:
    """Produce every matching dead-lettered record again to its source topic; returns how many."""
    reader = Consumer(client_config(settings, **{"group.id": f"cda-redrive-{uuid.uuid4()}",
                                                 "enable.auto.commit": False, "auto.offset.reset": "error"}))
    count = 0
    try:
        with EventProducer(settings) as producer:
            for offset, letter in dead_letters(settings, start, which):
                value = original_value(settings, letter, reader)
                origin = f"{topic_name(settings, 'dead_letters')}/0/{offset}".encode()
                producer.produce_raw(str(letter["source_topic"]), letter.data.get("source_key"), value,
                                     [(REDRIVEN_FROM_HEADER, origin)])
                count += 1
                if progress is not None:
                    progress(count)
    finally:
        reader.close()
    return count
