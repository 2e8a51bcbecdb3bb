"""The trainer's queue on its own: turns round robin by company, each company's requests in log order, commits
below the lowest request not ended, and a rebalance taking away what was read ahead."""

from __future__ import annotations

from topics.consumer import Received
from topics.events import Event
from trainer.queue import TrainingQueue


def rec(company: str, partition: int, offset: int) -> Received:
    event = Event.new("lora_training_requested", company, request_id=f"r{partition}-{offset}", base_model="tiny",
                      source="INLINE")
    return Received(event, "t", partition, offset, 0, company.encode(), b"")


def test_turns_go_round_robin_by_company_each_in_log_order() -> None:
    queue = TrainingQueue(read_ahead=10)
    for offset in range(4):
        queue.add(rec("flood", 0, offset))
    queue.add(rec("small", 1, 0))
    queue.add(rec("other", 0, 4))
    queue.add(rec("flood", 0, 0))  # read again: not queued twice
    order = []
    while (taken := queue.take()) is not None:
        order.append((taken.event.company_id, taken.offset))
    assert order == [("flood", 0), ("small", 0), ("other", 4), ("flood", 1), ("flood", 2), ("flood", 3)]
    assert len(queue) == 0 and queue.room == 10


def test_commits_stay_below_the_lowest_request_not_ended() -> None:
    queue = TrainingQueue(read_ahead=3)
    a, b, c = rec("a", 0, 5), rec("b", 0, 6), rec("c", 1, 2)
    for r in (a, b, c):
        queue.add(r)
    assert queue.room == 0
    assert queue.take() is a and queue.take() is b
    queue.ended(b)  # b ended before a: the commit stays at a
    assert queue.committable({("t", 0): 7, ("t", 1): 3}) == {("t", 0): 5, ("t", 1): 2}
    assert queue.committed({("t", 0): 5, ("t", 1): 2}) == []  # b is above the commit: not released yet
    queue.ended(a)
    offsets = queue.committable({("t", 0): 7, ("t", 1): 3})
    assert offsets == {("t", 0): 7, ("t", 1): 2}
    assert {r.offset for r in queue.committed(offsets)} == {5, 6}


def test_a_rebalance_drops_what_was_read_ahead_from_the_partitions_taken_away() -> None:
    queue = TrainingQueue(read_ahead=10)
    kept, gone, done = rec("a", 0, 1), rec("b", 1, 1), rec("b", 1, 0)
    for r in (done, kept, gone):
        queue.add(r)
    assert queue.take() is done
    queue.ended(done)
    queue.drop({("t", 1)})
    assert queue.take() is kept and queue.take() is None
    assert queue.committed({("t", 1): 9}) == []  # its partition's new owner releases it
    assert queue.committable({("t", 0): 2}) == {("t", 0): 1}
