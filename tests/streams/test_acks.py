"""Acknowledgements in offset order, whatever order the jobs end in, and none across a rebalance."""

from __future__ import annotations

import asyncio

from streams.acks import OrderedAcks


class Epoch:
    def __init__(self) -> None:
        self.value: int | None = 0


def test_a_record_is_acknowledged_only_once_every_record_read_before_it_ended() -> None:
    async def scenario() -> None:
        acked: list[int] = []
        epoch = Epoch()

        async def ack(event: int) -> None:
            acked.append(event)

        acks = OrderedAcks(ack, lambda: epoch.value)
        marks = {offset: acks.read("p0", offset, offset) for offset in (5, 6, 7)}
        other = acks.read("p1", 0, 100)
        await acks.ended("p0", 7, marks[7])
        await acks.ended("p0", 6, marks[6])
        assert acked == [] and acks.open("p0") == 3  # 5 still runs: committing 6 or 7 would lose it on a crash
        await acks.ended("p1", 0, other)
        assert acked == [100]  # another partition does not wait for p0
        await acks.ended("p0", 5, marks[5])
        assert acked == [100, 5, 6, 7] and acks.open("p0") == 0

    asyncio.run(scenario())


def test_a_job_read_before_a_rebalance_acknowledges_nothing_its_new_delivery_does() -> None:
    async def scenario() -> None:
        acked: list[str] = []
        epoch = Epoch()

        async def ack(event: str) -> None:
            acked.append(event)

        acks = OrderedAcks(ack, lambda: epoch.value)
        old = acks.read("p0", 3, "old delivery")
        epoch.value = None  # a rebalance under way
        await acks.ended("p0", 3, old)
        assert acked == []
        epoch.value = 1  # assigned again: the record comes again from the committed offset
        await acks.ended("p0", 3, old)
        assert acked == []  # the old delivery's end is not this assignment's
        new = acks.read("p0", 3, "new delivery")
        await acks.ended("p0", 3, new)
        assert acked == ["new delivery"]

    asyncio.run(scenario())
