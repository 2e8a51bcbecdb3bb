"""The trainer's queue: requests read ahead of the one in training, handed out round robin by company, so one
company's backlog (requests produced straight to the topic get no API quota) never holds another's for hours.

A company's requests keep their log order. Offsets are committable only below the lowest request of the
partition not yet ended, so a request read ahead but not yet trained is read again by whoever owns its
partition next; a request ended above that point is read again too, and the worker's redelivery path (its
stored version announced again, not retrained) makes that harmless.
"""

from __future__ import annotations

from collections import OrderedDict, deque

from topics.consumer import Received

Partition = tuple[str, int]


class TrainingQueue:
    def __init__(self, read_ahead: int) -> None:
        self.read_ahead = read_ahead
        self._waiting: OrderedDict[str, deque[Received]] = OrderedDict()  # company -> its requests; order = turns
        self._open: dict[Partition, set[int]] = {}  # offsets read and not ended, per partition
        self._ended: list[Received] = []  # ended, offset not yet committed

    def __len__(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    @property
    def room(self) -> int:
        """How many more records may be read ahead."""
        return max(0, self.read_ahead - len(self))

    def add(self, received: Received) -> None:
        """A record read from the topic; one read again (a rebalance) replaces nothing and is not queued twice."""
        part = (received.topic, received.partition)
        if received.offset in self._open.get(part, ()):
            return
        self._open.setdefault(part, set()).add(received.offset)
        self._waiting.setdefault(received.event.company_id, deque()).append(received)

    def take(self) -> Received | None:
        """The next request: the oldest of the company whose turn it is; that company goes to the back."""
        while self._waiting:
            company, requests = next(iter(self._waiting.items()))
            if not requests:
                del self._waiting[company]
                continue
            taken = requests.popleft()
            del self._waiting[company]
            if requests:
                self._waiting[company] = requests
            return taken
        return None

    def ended(self, received: Received) -> None:
        """The request's outcome is out (or it was dead-lettered): its offset no longer holds the commit back."""
        self._open.get((received.topic, received.partition), set()).discard(received.offset)
        self._ended.append(received)

    def committed(self, offsets: dict[Partition, int]) -> list[Received]:
        """The ended requests that `offsets`, now committed, put behind the group: none of them comes again."""
        behind: list[Received] = []
        kept: list[Received] = []
        for r in self._ended:
            (behind if r.offset < offsets.get((r.topic, r.partition), -1) else kept).append(r)
        self._ended = kept
        return behind

    def committable(self, positions: dict[Partition, int]) -> dict[Partition, int]:
        """The offsets to commit, given the consumer's `positions` (the next offset it reads, per partition):
        the lowest not ended where one is open, else the position (records dead-lettered unread included)."""
        return {part: min(self._open.get(part) or {position}) for part, position in positions.items()}

    def drop(self, partitions: set[Partition]) -> None:
        """Partitions taken away (a rebalance): their requests are the next owner's, read from the commit."""
        for part in partitions:
            self._open.pop(part, None)
        self._ended = [r for r in self._ended if (r.topic, r.partition) not in partitions]
        for company in list(self._waiting):
            kept = deque(r for r in self._waiting[company] if (r.topic, r.partition) not in partitions)
            if kept:
                self._waiting[company] = kept
            else:
                del self._waiting[company]
