"""Acknowledging records in offset order, whatever order their jobs end in.

Faust commits the first run of consecutive acknowledged offsets of a partition, and guards against a hole
before it only once something was committed, by one offset too little: a job at offset 7 ending before the
job at offset 5 would commit 8, and a crash then loses 5 (faust-streaming #606 is this, with agent
concurrency). So the agents acknowledge a partition's records only in the order they were read: a record's
acknowledgement waits until every record read before it on its partition has ended too.

A rebalance starts over: what was read before it comes again from the committed offset, so the records read
before it are forgotten, and a job of then that ends later acknowledges nothing (its record's new delivery
does, once its job is seen ended).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any


@dataclass
class _Read:
    event: Any
    epoch: int
    ended: bool = False


class OrderedAcks:
    """Per partition, the records read and not yet acknowledged, in read order. `epoch()` names the current
    assignment (it changes when a rebalance begins) and is None while one is under way: nothing is
    acknowledged then."""

    def __init__(self, ack: Callable[[Any], Awaitable[Any]], epoch: Callable[[], int | None]) -> None:
        self._ack = ack
        self._epoch = epoch
        self._seen: int | None = None
        self._reads: dict[Hashable, OrderedDict[int, _Read]] = {}
        self.acked = 0

    def _current(self) -> int | None:
        epoch = self._epoch()
        if epoch != self._seen:  # a rebalance since the last look: what was read will come again
            self._reads.clear()
            self._seen = epoch
        return epoch

    def read(self, tp: Hashable, offset: int, event: Any) -> int | None:
        """A record handed to the agents; returns the epoch its end must name."""
        epoch = self._current()
        if epoch is not None:
            self._reads.setdefault(tp, OrderedDict())[offset] = _Read(event, epoch)
        return epoch

    async def ended(self, tp: Hashable, offset: int, epoch: int | None) -> None:
        """The record's job has ended: acknowledge it, and every record after it whose job had ended, as soon as
        no record read before them is still open."""
        if epoch is None or self._current() != epoch:
            return  # read before a rebalance (or during one): its new delivery is acknowledged instead
        reads = self._reads.get(tp)
        if reads is None or offset not in reads:
            return
        reads[offset].ended = True
        while reads:
            first_offset, first = next(iter(reads.items()))
            if not first.ended:
                break
            del reads[first_offset]
            await self._ack(first.event)
            self.acked += 1

    def open(self, tp: Hashable) -> int:
        """Records of `tp` read and not yet acknowledged."""
        return len(self._reads.get(tp, ()))
