"""Which adapter serves which company: the in-memory view of `company_adapters`, shared by the
lifecycle (which writes it) and the gateway (which reads it on every request)."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class ActiveAdapter:
    company_id: str
    version: str
    served_name: str
    uri: str
    base_model: str
    rank: int


def served_name(company_id: str) -> str:
    """The model name a company's requests use once it has an adapter (never a base model's name)."""
    return f"{company_id}@lora"


def staging_name(company_id: str, version: str) -> str:
    """The name a new version is verified under before it replaces the company's adapter in place."""
    return f"{company_id}@{version}"


class AdapterRouter:
    """Thread-safe company -> active adapter map."""

    def __init__(self) -> None:
        self._active: dict[str, ActiveAdapter] = {}
        self._lock = threading.Lock()

    def get(self, company_id: str) -> ActiveAdapter | None:
        with self._lock:
            return self._active.get(company_id)

    def set(self, adapter: ActiveAdapter) -> ActiveAdapter | None:
        with self._lock:
            previous = self._active.get(adapter.company_id)
            self._active[adapter.company_id] = adapter
            return previous

    def all(self) -> list[ActiveAdapter]:
        with self._lock:
            return sorted(self._active.values(), key=lambda a: a.company_id)
