"""Acknowledgements in offset order, whatever order the jobs end in, and none across a rebalance."""

from __future__ import annotations

import asyncio
from typing import Any

from streams.acks import OrderedAcks


class Consumer:
    """The consumer's generation and whether a rebalance is under way, as the test sets them."""

    def __init__(self) -> None:
        self.generation = 1
        self.rebalancing = False
        self.acked: list[Any] = []

    async def ack(self, event: Any) -> None:
        self.acked.append(event)

    def acks(self) -> OrderedAcks:
        return OrderedAcks(self.ack, lambda: self.generation, lambda: self.rebalancing)


def test_a_record_is_acknowledged_only_once_every_record_read_before_it_ended() -> None:
    async def scenario() -> None:
        consumer = Consumer()
        acks = consumer.acks()
        for offset in (5, 6, 7):
            acks.read("p0", offset, offset, 1)
        acks.read("p1", 0, 100, 1)
        await acks.ended("p0", 7, 1)
        await acks.ended("p0", 6, 1)
        assert consumer.acked == [] and acks.open("p0") == 3  # 5 still runs: committing 6 or 7 would lose it on a crash
        await acks.ended("p1", 0, 1)
        assert consumer.acked == [100]  # another partition does not wait for p0
        await acks.ended("p0", 5, 1)
        assert consumer.acked == [100, 5, 6, 7] and acks.open("p0") == 0

    asyncio.run(scenario())


def test_nothing_is_acknowledged_mid_rebalance_and_an_older_generation_never() -> None:
    async def scenario() -> None:
        consumer = Consumer()
        acks = consumer.acks()
        acks.read("p0", 3, "first delivery", 1)
        acks.read("p0", 4, "ends during the rebalance", 1)
        consumer.rebalancing = True
        await acks.ended("p0", 3, 1)
        assert consumer.acked == []  # the consumer is between revoke and assignment
        consumer.generation, consumer.rebalancing = 2, False  # assigned again: the records come again
        await acks.ended("p0", 4, 1)
        await acks.flush()
        assert consumer.acked == []  # generation 1's ends are not this generation's
        acks.read("p0", 3, "new delivery", 2)
        await acks.ended("p0", 3, 2)
        assert consumer.acked == ["new delivery"]

    asyncio.run(scenario())


def test_ends_during_a_rebalance_that_keeps_the_generation_are_acknowledged_after_it() -> None:
    async def scenario() -> None:
        consumer = Consumer()
        acks = consumer.acks()
        acks.read("p0", 0, "r0", 1)
        consumer.rebalancing = True
        await acks.ended("p0", 0, 1)
        assert consumer.acked == []
        consumer.rebalancing = False  # the rebalance ended without a new generation for this consumer
        await acks.flush()
        assert consumer.acked == ["r0"]

    asyncio.run(scenario())
