"""Reading a topic from its beginning to today's end, once: how the CLI, the API's writes and the trainer
learn what a compacted topic holds now without a view that may lag. A throw-away group, nothing committed;
records that cannot be decoded are skipped here (the topic's own consumers dead-letter them)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

from core.settings import Settings
from topics.consumer import EventConsumer, Received
from topics.dead_letters import Skipped
from topics.events import Event
from topics.positions import Position


def read_to_end(settings: Settings, topic: str, reader: str = "cda-read") -> Iterator[Received]:
    """Every decodable record of a catalog topic, from its beginning to its end as of now."""
    with EventConsumer(settings, f"{reader}-{uuid.uuid4()}", dead_letters=Skipped()) as consumer:
        consumer.assign(topic, Position.beginning(), until_end=True)
        yield from consumer


def fold_topic(settings: Settings, topic: str, apply: Callable[[Event], None], reader: str = "cda-read") -> None:
    """Apply every event of `topic` to a fold, oldest first (a state object's `apply`)."""
    for received in read_to_end(settings, topic, reader):
        apply(received.event)
