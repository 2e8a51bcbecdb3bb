"""A projection: which topics it reads, which facts table it writes, and how each event becomes a row.

Every row starts with the common columns (source position, event id and type, company, time), so a
redelivered or replayed event lands on the same deduplication key and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from projections.errors import FoldError
from topics.consumer import Received
from topics.events import Event

COMMON_COLUMNS = ("src_topic", "src_partition", "src_offset", "event_id", "event_type", "company_id", "occurred_at")
Fold = Callable[[Event], Mapping[str, Any]]


@dataclass(frozen=True)
class Projection:
    """One view: `folds` maps each event type it understands to the function giving its row's columns."""

    name: str
    topics: tuple[str, ...]
    table: str
    view: str
    defaults: Mapping[str, Any]
    folds: Mapping[str, Fold]
    ignored: frozenset[str] = frozenset()  # event types of its topics that this view deliberately skips

    @property
    def columns(self) -> tuple[str, ...]:
        return COMMON_COLUMNS + tuple(self.defaults)

    @property
    def group_id(self) -> str:
        return f"cda-projection-{self.name}"

    def row(self, received: Received) -> tuple[Any, ...] | None:
        """The facts row of one event (None when skipped); `FoldError` names the event it cannot fold."""
        event = received.event
        fold = self.folds.get(event.type)
        if fold is None:
            if event.type in self.ignored:
                return None
            raise FoldError(f"projection {self.name} does not fold event type {event.type!r} "
                            f"(schema v{event.schema_version}); known: {', '.join(sorted(self.folds))}")
        try:
            values = {**self.defaults, **fold(event)}
        except (KeyError, TypeError, ValueError) as exc:
            raise FoldError(f"projection {self.name} cannot fold {event.type} {event.event_id}: {exc!r}") from exc
        unknown = set(values) - set(self.defaults)
        if unknown:
            raise FoldError(f"projection {self.name}: fold of {event.type} gave unknown columns {sorted(unknown)}")
        occurred = event.occurred_at
        return (
            received.topic, received.partition, received.offset, event.event_id, event.type,
            event.company_id, occurred.replace(tzinfo=None) if isinstance(occurred, datetime) else occurred,
            *(values[c] for c in self.defaults),
        )
