"""Which adapter serves which company: the in-memory view of `company_adapters`, shared by the
lifecycle (which writes it) and the gateway (which reads it on every request)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from core.grounding import NO_GROUNDING, Grounding


@dataclass(frozen=True)
class ActiveAdapter:
    company_id: str
    version: str
    served_name: str
    uri: str
    base_model: str
    rank: int
    grounding: Grounding = NO_GROUNDING  # the arguments its calls copy (`core.grounding`): the gateway narrows them


SERVED_SUFFIX = "@lora"


def served_name(company_id: str) -> str:
    """The model name a company's requests use once it has an adapter (never a base model's name)."""
    return f"{company_id}{SERVED_SUFFIX}"


def staging_name(company_id: str, version: str) -> str:
    """The name a new version is verified under before it replaces the company's adapter in place."""
    return f"{company_id}@{version}"


def is_staging_name(name: str) -> bool:
    """Whether `name` is a staging copy of the lifecycle (`company@version`): identifiers hold no `@`, so
    neither a base model nor a served name nor the trainer's `eval-*` candidates match."""
    return "@" in name and not name.endswith(SERVED_SUFFIX)


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

    def remove(self, company_id: str) -> ActiveAdapter | None:
        with self._lock:
            return self._active.pop(company_id, None)

    def all(self) -> list[ActiveAdapter]:
        with self._lock:
            return sorted(self._active.values(), key=lambda a: a.company_id)
