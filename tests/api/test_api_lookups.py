"""Idempotency lookups: requests asking at once share store queries, each gets its own answer, a failure
reaches every waiting request."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from api.lookups import JobLookups


class SlowStore:
    """Knows some (company, job) pairs; each query takes a moment, as chDB's does."""

    def __init__(self, known: set[tuple[str, str]], fail: bool = False) -> None:
        self.known, self.fail, self.asked = known, fail, []
        self.lock = threading.Lock()

    def query(self, sql: str, params: dict[str, Any]) -> list[tuple[str, str]]:
        with self.lock:
            self.asked.append(list(params["jobs"]))
        threading.Event().wait(0.02)
        if self.fail:
            raise ConnectionError("store down")
        return [(j, f"hash-{j}") for j in params["jobs"] if (params["company"], j) in self.known]


def test_lookups_asked_together_share_queries_and_answer_each() -> None:
    store = SlowStore({("acme", "j3"), ("acme", "j7"), ("globex", "j1")})
    lookups = JobLookups(store)  # type: ignore[arg-type]

    async def ask() -> list[str | None]:
        asks = [("acme", f"j{i}") for i in range(40)] + [("globex", "j1"), ("globex", "j3")]
        return await asyncio.gather(*(lookups.request_hash(c, j) for c, j in asks))

    answers = asyncio.run(ask())
    assert [i for i, a in enumerate(answers[:40]) if a is not None] == [3, 7] and answers[40:] == ["hash-j1", None]
    assert lookups.queries < 42 and sum(len(a) for a in store.asked) == 42  # each pair asked once, in few queries


def test_a_store_failure_reaches_every_waiting_request() -> None:
    lookups = JobLookups(SlowStore(set(), fail=True))  # type: ignore[arg-type]

    async def ask() -> list[object]:
        return await asyncio.gather(*(lookups.request_hash("acme", f"j{i}") for i in range(5)), return_exceptions=True)

    assert all(isinstance(a, ConnectionError) for a in asyncio.run(ask()))
    with pytest.raises(ConnectionError):
        asyncio.run(lookups.request_hash("acme", "again"))
