"""Reading a topic without a group: once from a position to today's end (how the CLI, the API's writes, the
trainer and inference's restore learn what a compacted topic holds now, without a view that may lag), or
following it live. A throw-away group id, nothing committed; records that cannot be decoded are skipped and
counted here, never dead-lettered again (the topic's own consumer groups dead-letter them, once)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

from core.settings import Settings
from topics.consumer import EventConsumer, Received
from topics.dead_letters import Skipped
from topics.events import Event
from topics.positions import Position


def read_to_end(settings: Settings, topic: str, reader: str = "cda-read", start: Position | None = None
                ) -> Iterator[Received]:
    """Every decodable record of a catalog topic, from `start` (its beginning) to its end as of now."""
    with EventConsumer(settings, f"{reader}-{uuid.uuid4()}", dead_letters=Skipped()) as consumer:
        consumer.assign(topic, start or Position.beginning(), until_end=True)
        yield from consumer


def fold_topic(settings: Settings, topic: str, apply: Callable[[Event], None], reader: str = "cda-read") -> None:
    """Apply every event of `topic` to a fold, oldest first (a state object's `apply`)."""
    for received in read_to_end(settings, topic, reader):
        apply(received.event)


def follow_topic(settings: Settings, topic: str, start: Position, reader: str = "cda-follow") -> Iterator[Event | None]:
    """Events of `topic` from `start` as they come, with a None whenever nothing came for a moment (so the
    caller can check a deadline); it ends only when the caller stops iterating."""
    with EventConsumer(settings, f"{reader}-{uuid.uuid4()}", dead_letters=Skipped()) as consumer:
        consumer.assign(topic, start, until_end=False)
        while True:
            batch = consumer.poll(0.2)
            for received in batch:
                yield received.event
            if not batch:
                yield None
