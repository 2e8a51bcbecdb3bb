"""Company memory as the agents hold it: the fold of `company_memory` (entries written, entries deleted), per
company. Two kinds of entry matter to a decision: `preference` entries the company writes ("Default
currency: CHF") and `automation` entries the agents write after each job (task, tool, arguments, outcome),
which are the company's automation history and, for a job in a session, the session's earlier results."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from topics.events import Event

PREFERENCE = "preference"
AUTOMATION = "automation"
KINDS = (PREFERENCE, AUTOMATION, "fact")  # what a company may write
SESSION = "session"  # a closed session's results folded to one entry by the agents; never recalled into a prompt
MEMORY_EVENTS = ("memory_written", "memory_deleted")


@dataclass(frozen=True)
class MemoryEntry:
    """One entry as it stands now; `written_ms` orders entries for recency and a session's results."""

    company_id: str
    entry_id: str
    kind: str
    content: str
    tags: tuple[str, ...]
    session_id: str | None
    source_job_id: str | None
    written_ms: int

    @classmethod
    def from_event(cls, event: Event) -> MemoryEntry:
        return cls(event.company_id, str(event["entry_id"]), str(event.data.get("kind") or "fact"),
                   str(event["content"]), tuple(event.data.get("tags") or ()), event.data.get("session_id"),
                   event.data.get("source_job_id"), int(event.occurred_at.timestamp() * 1000))

    @property
    def automation(self) -> dict[str, Any] | None:
        """An automation entry's record (task, tool, arguments, status, result); None for other kinds."""
        if self.kind != AUTOMATION:
            return None
        try:
            value = json.loads(self.content)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None

    def note(self) -> str:
        """The entry as a line of the prompt's `Notes:`: a preference as written; an automation entry as what
        was done, without its argument values (an old id must never be copied into a new call)."""
        record = self.automation
        if record is None:
            return self.content
        return f"'{record.get('task', '')}' was done with {record.get('tool', '')} ({record.get('status', '')})"


def automation_content(task: str, tool: str, arguments: dict[str, Any] | None, status: str, result: Any) -> str:
    """The content of an automation entry: one JSON record, so recall and sessions can read it back."""
    return json.dumps({"task": task, "tool": tool, "arguments": arguments or {}, "status": status, "result": result},
                      sort_keys=True, separators=(",", ":"), default=str)


class CompanyMemory:
    """Entries by company, folded from `memory_written` / `memory_deleted` (thread-safe: a follower thread
    applies, the agents read). Applying the same event twice changes nothing."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, MemoryEntry]] = {}
        self._lock = threading.Lock()

    def apply(self, event: Event) -> None:
        with self._lock:
            company = self._entries.setdefault(event.company_id, {})
            entry_id = str(event["entry_id"])
            if event.type == "memory_written":
                entry = MemoryEntry.from_event(event)
                known = company.get(entry_id)
                if known is None or known.written_ms <= entry.written_ms:
                    company[entry_id] = entry
            elif event.type == "memory_deleted":
                company.pop(entry_id, None)

    def entries_of(self, company_id: str) -> list[MemoryEntry]:
        with self._lock:
            return sorted(self._entries.get(company_id, {}).values(), key=lambda e: (e.written_ms, e.entry_id))

    def get(self, company_id: str, entry_id: str) -> MemoryEntry | None:
        with self._lock:
            return self._entries.get(company_id, {}).get(entry_id)

    def companies(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def recallable(self, company_id: str, automation_kept: int | None = None) -> list[MemoryEntry]:
        """What recall may choose from: everything but a session's own results (those are `Earlier:`) and closed
        sessions' summaries, and of
        the automation history only the latest `automation_kept` entries (it grows by one per unit; recall
        shows at most one of them, and an index over all of it would cost each decision more every day)."""
        entries = [e for e in self.entries_of(company_id)
                   if (e.session_id is None or e.kind != AUTOMATION) and e.kind != SESSION]
        if automation_kept is None:
            return entries
        history = [i for i, e in enumerate(entries) if e.kind == AUTOMATION]
        dropped = set(history[:max(0, len(history) - automation_kept)])
        return [e for i, e in enumerate(entries) if i not in dropped]

    def session_results(self, company_id: str, session_id: str) -> list[MemoryEntry]:
        """The session's automation entries, oldest first: what its earlier jobs did and got back."""
        return [e for e in self.entries_of(company_id) if e.session_id == session_id and e.kind == AUTOMATION]
