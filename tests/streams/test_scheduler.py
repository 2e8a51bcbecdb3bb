"""The fair scheduler on its own: round robin between companies, bounds, sessions in order, one run per job."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from streams.scheduler import FairScheduler, Work


class Jobs:
    """Jobs that run until released, recording the order they started in and how many ran at once."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.now: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()

    def work(self, company: str, name: str, lane: str | None = None, key: str = "") -> Work:
        gate = self.gates.setdefault(name, asyncio.Event())

        async def run() -> None:
            self.started.append(name)
            self.now[company] += 1
            self.peak[company] = max(self.peak[company], self.now[company])
            await gate.wait()
            self.now[company] -= 1

        async def finish() -> None:
            self.finished.append(name)

        return Work(company, lane, run, finish, key=key)

    async def release(self, *names: str) -> None:
        for name in names:
            self.gates[name].set()
        for _ in range(5):
            await asyncio.sleep(0)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_flooding_company_does_not_hold_back_another() -> None:
    async def scenario() -> None:
        jobs, scheduler = Jobs(), FairScheduler(total=2, per_company=2, max_waiting=100)
        for i in range(20):
            await scheduler.submit(jobs.work("flood", f"f{i}"))
        await scheduler.submit(jobs.work("small", "s0"))
        await settle()
        assert jobs.started == ["f0", "f1"]  # the flood took both slots before the small job came
        await jobs.release("f0")
        assert jobs.started[2] == "s0"  # the first free slot is the small company's turn, not f2's
        await jobs.release(*(f"f{i}" for i in range(20)), "s0")
        await scheduler.drain()
        assert sorted(jobs.finished) == sorted([f"f{i}" for i in range(20)] + ["s0"])

    asyncio.run(scenario())


def test_bounds_per_company_and_overall_hold() -> None:
    async def scenario() -> None:
        jobs, scheduler = Jobs(), FairScheduler(total=5, per_company=2, max_waiting=100)
        for company in ("a", "b", "c"):
            for i in range(6):
                await scheduler.submit(jobs.work(company, f"{company}{i}"))
        await settle()
        assert scheduler.running == 5 and max(scheduler.running_of(c) for c in "abc") == 2
        for name in list(jobs.gates):
            await jobs.release(name)
        await scheduler.drain()
        assert max(jobs.peak.values()) == 2 and len(jobs.finished) == 18

    asyncio.run(scenario())


def test_a_session_s_jobs_run_one_at_a_time_in_order_beside_the_company_s_others() -> None:
    async def scenario() -> None:
        jobs, scheduler = Jobs(), FairScheduler(total=8, per_company=4, max_waiting=100)
        await scheduler.submit(jobs.work("a", "s1-first", lane="s1"))
        await scheduler.submit(jobs.work("a", "s1-second", lane="s1"))
        await scheduler.submit(jobs.work("a", "free"))
        await scheduler.submit(jobs.work("a", "s2", lane="s2"))
        await settle()
        assert jobs.started == ["s1-first", "free", "s2"]  # the session's second waits for its first
        await jobs.release("s1-first")
        assert jobs.started[-1] == "s1-second"
        await jobs.release("s1-second", "free", "s2")
        await scheduler.drain()

    asyncio.run(scenario())


def test_a_job_delivered_twice_runs_once_and_finishes_both_deliveries() -> None:
    async def scenario() -> None:
        jobs, scheduler = Jobs(), FairScheduler(total=2, per_company=2, max_waiting=100)
        await scheduler.submit(jobs.work("a", "j1", key="a/j1"))
        await settle()
        await scheduler.submit(jobs.work("a", "j1-again", key="a/j1"))  # a rebalance delivered it again
        await jobs.release("j1")
        await scheduler.drain()
        assert jobs.started == ["j1"] and jobs.finished == ["j1", "j1-again"]

    asyncio.run(scenario())


def test_submit_waits_while_the_queues_are_full() -> None:
    async def scenario() -> None:
        jobs, scheduler = Jobs(), FairScheduler(total=1, per_company=1, max_waiting=2)
        for i in range(3):  # one runs, two wait
            await scheduler.submit(jobs.work("a", f"j{i}"))
        blocked = asyncio.create_task(scheduler.submit(jobs.work("b", "late")))
        await settle()
        assert not blocked.done() and scheduler.waiting == 2
        await jobs.release("j0")
        await asyncio.wait_for(blocked, 1)
        await jobs.release("j1", "j2", "late")
        await scheduler.drain()
        assert len(jobs.finished) == 4

    asyncio.run(scenario())


def test_a_stopped_job_is_not_finished_and_dropped_work_never_runs() -> None:
    async def scenario() -> None:
        jobs, scheduler = Jobs(), FairScheduler(total=1, per_company=1, max_waiting=10)
        await scheduler.submit(jobs.work("a", "running"))
        await scheduler.submit(jobs.work("a", "kept"))
        gone = jobs.work("b", "revoked")
        gone.origin = "p1"
        await scheduler.submit(gone)
        assert scheduler.discard(lambda w: w.origin != "p1") == 1 and scheduler.waiting == 1
        await settle()
        await scheduler.cancel()
        assert jobs.started == ["running"] and jobs.finished == []  # its record will come again
        assert scheduler.running == 0 and scheduler.waiting == 0

    asyncio.run(scenario())


def test_a_running_job_of_a_revoked_partition_stops_unfinished_and_its_slot_goes_on() -> None:
    """Two workers must not run one job: the revoked one is cancelled (not finished, its record the new owner's),
    the next queued job takes its slot at once, and the job delivered again later runs as a job of its own."""
    async def scenario() -> None:
        jobs, scheduler = Jobs(), FairScheduler(total=1, per_company=1, max_waiting=10)
        revoked = jobs.work("a", "revoked", key="a/j1")
        revoked.origin = "p1"
        await scheduler.submit(revoked)
        await scheduler.submit(jobs.work("b", "next"))
        await settle()
        assert scheduler.discard(lambda w: w.origin != "p1") == 1
        await settle()
        assert jobs.started == ["revoked", "next"] and jobs.finished == []
        again = jobs.work("a", "again", key="a/j1")  # the partition came back: delivered again
        await scheduler.submit(again)
        await jobs.release("next", "again")
        await scheduler.drain()
        assert jobs.finished == ["next", "again"] and scheduler.running == 0

    asyncio.run(scenario())


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        FairScheduler(total=0, per_company=1, max_waiting=1)
