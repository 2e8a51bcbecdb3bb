"""The vLLM servers one inference gateway spreads companies over, and which of them serves a company.

A company goes to the server that ranks first for it by rendezvous hashing (highest `sha256(company | url)`)
among the servers that answer. Adding or losing a server moves only the companies that ranked it first; when
it comes back they return. Each server remembers which company adapters (and which versions) were loaded
into it, so the gateway loads a company's adapter on the server it is routed to the first time it goes
there, and a restarted server (which forgets its runtime adapters) is noticed by its listing.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from inference.vllm_api import AsyncVllmApi, VllmApi


@dataclass
class Backend:
    """One vLLM server: its clients, whether it answered last time, the company adapters loaded into it."""

    url: str
    api: VllmApi
    async_api: AsyncVllmApi
    up: bool = True
    loaded: dict[str, str] = field(default_factory=dict)  # company -> version under its served name

    def weight(self, company_id: str) -> int:
        return int.from_bytes(hashlib.sha256(f"{company_id}|{self.url}".encode()).digest()[:8], "big")


class Backends:
    """The servers in a fixed order; thread-safe marks of which answer and what each holds."""

    def __init__(self, backends: Sequence[Backend]) -> None:
        if not backends:
            raise ValueError("Backends needs at least one vLLM server")
        self.all = list(backends)
        self._lock = threading.Lock()

    @classmethod
    def of(cls, urls: Sequence[str], timeout_s: float) -> Backends:
        return cls([Backend(url, VllmApi(url, timeout_s), AsyncVllmApi(url, timeout_s)) for url in urls])

    @property
    def first(self) -> Backend:
        return self.all[0]

    def ranked(self, company_id: str) -> list[Backend]:
        """Every server, the company's first: those that answered before those that did not (a server marked
        down is still tried last, so a stale mark never refuses a request that one of them could serve)."""
        order = sorted(self.all, key=lambda b: b.weight(company_id), reverse=True)
        with self._lock:
            return [b for b in order if b.up] + [b for b in order if not b.up]

    def owner(self, company_id: str) -> Backend:
        """The server a company is served by now: the first in its ranking that answers."""
        return self.ranked(company_id)[0]

    def mark(self, backend: Backend, up: bool) -> None:
        with self._lock:
            backend.up = up

    def record(self, backend: Backend, company_id: str, version: str | None) -> None:
        """What `backend` holds of a company's adapter now (None: nothing)."""
        with self._lock:
            if version is None:
                backend.loaded.pop(company_id, None)
            else:
                backend.loaded[company_id] = version

    def holds(self, backend: Backend, company_id: str) -> str | None:
        with self._lock:
            return backend.loaded.get(company_id)

    def holders(self, company_id: str) -> list[Backend]:
        with self._lock:
            return [b for b in self.all if company_id in b.loaded]
