"""Acknowledging records in offset order, whatever order their jobs end in.

Faust commits the first run of consecutive acknowledged offsets of a partition, and guards against a hole
before it only once something was committed, by one offset too little: a job at offset 7 ending before the
job at offset 5 would commit 8, and a crash then loses 5 (faust-streaming #606 is this, with agent
concurrency). So the agents acknowledge a partition's records only in the order they were read: a record's
acknowledgement waits until every record read before it on its partition has ended too.

A rebalance starts over: what was read before it comes again from the committed offset. So reads are kept
per consumer generation (what Faust stamps on each message it fetched): when the generation changes, the
reads of the older one are forgotten, and a job of then that ends later acknowledges nothing (its record's new
delivery does, once its job is seen ended). While a rebalance is under way nothing is acknowledged; ends that
come meanwhile are acknowledged once it is over, if their generation is still the current one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any


@dataclass
class _Read:
    event: Any
    ended: bool = False


class OrderedAcks:
    """Per partition, the records read in the current generation and not yet acknowledged, in read order.
    `generation()` is the consumer's generation now; `paused()` is true while a rebalance is under way."""

    def __init__(self, ack: Callable[[Any], Awaitable[Any]], generation: Callable[[], int],
                 paused: Callable[[], bool] = lambda: False) -> None:
        self._ack = ack
        self._generation = generation
        self._paused = paused
        self._seen: int | None = None
        self._reads: dict[Hashable, OrderedDict[int, _Read]] = {}
        self.acked = 0

    def _current(self) -> int:
        generation = self._generation()
        if generation != self._seen:  # a rebalance since the last look: what was read will come again
            self._reads.clear()
            self._seen = generation
        return generation

    def read(self, tp: Hashable, offset: int, event: Any, generation: int) -> None:
        """A record of `generation` handed to the agents (one of an older generation is not tracked: Faust
        delivers it again)."""
        if generation == self._current():
            self._reads.setdefault(tp, OrderedDict())[offset] = _Read(event)

    async def ended(self, tp: Hashable, offset: int, generation: int) -> None:
        """The record's job has ended: acknowledge it, and every record after it whose job had ended, as soon as
        no record read before them is still open."""
        if generation != self._current():
            return  # read before a rebalance: its new delivery is acknowledged instead
        reads = self._reads.get(tp)
        if reads is not None and offset in reads:
            reads[offset].ended = True
        await self.flush()

    async def flush(self) -> None:
        """Acknowledge, partition by partition, the ended records no open record precedes (none mid-rebalance)."""
        if self._paused():
            return
        generation = self._current()
        for reads in list(self._reads.values()):
            while reads and generation == self._current():
                first_offset, first = next(iter(reads.items()))
                if not first.ended:
                    break
                del reads[first_offset]
                await self._ack(first.event)
                self.acked += 1

    def open(self, tp: Hashable) -> int:
        """Records of `tp` read and not yet acknowledged."""
        return len(self._reads.get(tp, ()))
