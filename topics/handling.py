"""How a worker handles a batch: each record on its own, so one bad record costs one dead letter, not the
partition. A transient failure (broker, store, model server down) propagates instead: the caller commits
nothing and re-joins (`core.workers.run_until_stopped`), and the group hands the records back."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from core.errors import is_transient
from topics.consumer import Received
from topics.dead_letters import Rejected

log = logging.getLogger(__name__)


class RejectSink(Protocol):
    def send(self, rejected: Rejected) -> None: ...


def reject(sink: RejectSink, received: Received, error: Exception) -> None:
    """Send a decoded record that could not be handled to the dead letters, with the reason."""
    sink.send(Rejected.of_received(received.topic, received.partition, received.offset, received.key,
                                   received.value, error))


def handle_each(target: RejectSink | object, batch: Iterable[Received], handler: Callable[[Received], object]) -> int:
    """Apply `handler` to each record; returns how many were dead-lettered. Transient errors are raised.

    `target` is the consumer (its dead letters are used) or any reject sink.
    """
    sink: RejectSink = getattr(target, "dead_letters", target)  # type: ignore[assignment]
    rejected = 0
    for received in batch:
        try:
            handler(received)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.warning("dead-lettering %s[%d]@%d (%s): %s", received.topic, received.partition, received.offset,
                        received.event.type, exc)
            reject(sink, received, exc)
            rejected += 1
    return rejected
