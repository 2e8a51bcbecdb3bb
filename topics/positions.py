"""Where to start (or stop) reading a topic: its beginning, its end, an offset or a point in time."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

_RELATIVE = re.compile(r"^-?(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """ISO-8601 (`2026-11-24T10:00:00Z`), epoch milliseconds, or a span ago (`15m`, `-2h`, `1d`)."""
    text = text.strip()
    now = now or datetime.now(timezone.utc)
    if match := _RELATIVE.match(text):
        return now - timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, tz=timezone.utc)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"cannot read {text!r} as a time: use ISO-8601, epoch ms, or a span like 15m / 2h / 1d") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Position:
    """A position in every partition of a topic: exactly one of offset / time, or the beginning/end."""

    kind: str  # "beginning", "end", "offset", "time"
    offset: int | None = None
    time: datetime | None = None

    @classmethod
    def beginning(cls) -> Position:
        return cls("beginning")

    @classmethod
    def end(cls) -> Position:
        return cls("end")

    @classmethod
    def at_offset(cls, offset: int) -> Position:
        if offset < 0:
            raise ValueError(f"offset must be >= 0, not {offset}")
        return cls("offset", offset=offset)

    @classmethod
    def at_time(cls, when: datetime) -> Position:
        return cls("time", time=when)


def resolve(consumer: Consumer, topic: str, partitions: list[int], position: Position, timeout_s: float) -> list[TopicPartition]:
    """Concrete offsets of `position` in each partition (a time past the last record resolves to the end)."""
    if position.kind == "beginning":
        return [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
    if position.kind == "end":
        return [TopicPartition(topic, p, high_watermark(consumer, topic, p, timeout_s)) for p in partitions]
    if position.kind == "offset" and position.offset is not None:
        out = []
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            out.append(TopicPartition(topic, p, min(max(position.offset, low), high)))
        return out
    if position.time is None:
        raise ValueError(f"position {position} names neither an offset nor a time")
    ms = int(position.time.timestamp() * 1000)
    found = consumer.offsets_for_times([TopicPartition(topic, p, ms) for p in partitions], timeout=timeout_s)
    return [
        tp if tp.offset >= 0 else TopicPartition(topic, tp.partition, high_watermark(consumer, topic, tp.partition, timeout_s))
        for tp in found
    ]


def high_watermark(consumer: Consumer, topic: str, partition: int, timeout_s: float) -> int:
    return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)[1]

