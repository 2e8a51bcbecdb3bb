"""Fair shares of the agents between companies: no company's jobs wait behind another's.

Requests arrive in log order, many companies sharing a partition. Each company has its own queue; each free
slot goes to the company running the fewest jobs (round robin between equals), within a bound per company
and one overall: a company flooding the agents gets the slots no one else wants, and no more. Jobs
of one lane (a company's session) run one at a time, in arrival order: a session's next job reads the results
of the one before it. A job's own units run concurrently inside it (`AgentSettings.concurrency`).

`submit` waits while the queues hold `max_waiting` jobs: that bounds what the agents hold in memory, and is
where reading the log pauses. What a job's `finish` does (acknowledge its record, so its offset may be
committed) is the caller's; it runs once the job's body returned, and never when it raised or was cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from core.bounds import at_least

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Work:
    """One job to run: its company, its lane (None: it may run beside the company's other jobs) and its body."""

    company: str
    lane: str | None
    run: Callable[[], Awaitable[None]]
    finish: Callable[[], Awaitable[None]] | None = None
    key: str = ""  # what makes two deliveries one job (the job id); a second one joins the first
    origin: object = None  # where the record came from (its topic partition), for `discard`
    joined: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


class FairScheduler:
    """Per-company queues served round robin; `per_company` and `total` bound the jobs running at once."""

    def __init__(self, total: int, per_company: int, max_waiting: int) -> None:
        at_least("FairScheduler", 1, total=total, per_company=per_company, max_waiting=max_waiting)
        self.total = total
        self.per_company = per_company
        self.max_waiting = max_waiting
        self._queues: dict[str, deque[Work]] = {}
        self._turns: deque[str] = deque()  # companies with queued work, whose turn comes next first
        self._running: Counter[str] = Counter()
        self._lanes: set[tuple[str, str]] = set()
        self._by_key: dict[str, Work] = {}  # queued or running, by key
        self._tasks: set[asyncio.Task[None]] = set()
        self._working: dict[asyncio.Task[None], Work] = {}  # running, by its task
        self._room = asyncio.Event()
        self._room.set()
        self.started = 0

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._queues.values())

    @property
    def running(self) -> int:
        return sum(self._running.values())

    def running_of(self, company: str) -> int:
        return self._running[company]

    async def submit(self, work: Work) -> None:
        """Queue `work`, waiting first while the queues are full. A job already queued or running under the
        same key takes this delivery's `finish` along instead of running twice."""
        same = self._by_key.get(work.key) if work.key else None
        if same is not None:
            if work.finish is not None:
                same.joined.append(work.finish)
            return
        while self.waiting >= self.max_waiting:
            self._room.clear()
            await self._room.wait()
        if work.key:
            self._by_key[work.key] = work
        queue = self._queues.setdefault(work.company, deque())
        if not queue and work.company not in self._turns:
            self._turns.append(work.company)
        queue.append(work)
        self._dispatch()

    def discard(self, keep: Callable[[Work], bool]) -> int:
        """Drop queued work that `keep` refuses, and cancel such work running (finishing none of it), e.g. the
        jobs of partitions a rebalance took away: their new owner resumes them from their logs, and two workers
        must not run one job at once."""
        dropped = 0
        for task, work in list(self._working.items()):
            if not keep(work):
                task.cancel()
                dropped += 1
                if work.key and self._by_key.get(work.key) is work:
                    del self._by_key[work.key]  # a delivery that comes again is a job of its own
        for company in list(self._queues):
            queue = self._queues[company]
            for work in [w for w in queue if not keep(w)]:
                queue.remove(work)
                dropped += 1
                if work.key:
                    self._by_key.pop(work.key, None)
            if not queue:
                del self._queues[company]
                self._turns.remove(company)
        self._room.set()
        return dropped

    async def drain(self) -> None:
        """Wait until nothing is queued or running."""
        while self._tasks or self.waiting:
            if self._tasks:
                await asyncio.wait(set(self._tasks))
            else:
                await asyncio.sleep(0.01)

    def _startable(self, company: str) -> Work | None:
        """The company's first queued job that may start now (its lane free), in arrival order."""
        if self._running[company] >= self.per_company:
            return None
        blocked: set[str] = set()
        for work in self._queues.get(company, ()):
            if work.lane is None:
                return work
            if work.lane not in blocked and (company, work.lane) not in self._lanes:
                return work
            blocked.add(work.lane)  # a later job of a waiting lane waits behind it
        return None

    def _dispatch(self) -> None:
        """Start jobs while there are slots: each slot to the company running the fewest jobs now, among those
        with a job that may start, and between equals to the one whose turn came longest ago."""
        while self.running < self.total and self._turns:
            ready = [(self._running[c], i, c, w) for i, c in enumerate(self._turns)
                     if (w := self._startable(c)) is not None]
            if not ready:
                return
            _, _, company, work = min(ready, key=lambda r: r[:2])
            self._turns.remove(company)
            queue = self._queues[company]
            queue.remove(work)
            if queue:
                self._turns.append(company)  # its next turn comes after everyone else's
            else:
                del self._queues[company]
            self._start(work)

    def _start(self, work: Work) -> None:
        self._running[work.company] += 1
        if work.lane is not None:
            self._lanes.add((work.company, work.lane))
        self.started += 1
        self._room.set()
        task = asyncio.get_running_loop().create_task(self._run(work), name=f"job-{work.key or work.company}")
        self._tasks.add(task)
        self._working[task] = work
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda done: self._working.pop(done, None))

    async def _run(self, work: Work) -> None:
        ended = False
        try:
            await work.run()
            ended = True
        except Exception:  # noqa: BLE001 - its record stays open (never acknowledged): it comes again
            log.exception("job of %s raised; its record is left open", work.company)
        finally:  # a job cancelled or raising (the agents stopping) did not end: not finished, its record comes again
            self._running[work.company] -= 1
            if not self._running[work.company]:
                del self._running[work.company]
            if work.lane is not None:
                self._lanes.discard((work.company, work.lane))
            if work.key and self._by_key.get(work.key) is work:
                del self._by_key[work.key]
            if not ended:
                self._dispatch()  # its slot to the next job (on a full stop the queues are empty)
        if not ended:
            return
        for finish in [work.finish, *work.joined]:
            if finish is not None:
                try:
                    await finish()
                except Exception:  # noqa: BLE001 - one failed acknowledgement must not keep the others back
                    log.exception("finishing a job of %s failed", work.company)
        self._dispatch()

    async def cancel(self) -> None:
        """Stop: drop what is queued and cancel what runs, finishing none of it (their records come again)."""
        self._queues.clear()
        self._turns.clear()
        self._by_key.clear()
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
