"""Company sessions as the agents hold them: the fold of `company_sessions` (opened, closed), per company.
A job that names a session is accepted only while that session of *its* company is open; within it, each
decision also sees the results of the session's earlier jobs (`context.memory`). A session nobody used for
`session_idle_s` is closed by the agents (`session_closed`, reason `idle`); a closed session's results are then
folded to one summary entry (`context.events.session_fold`)."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from topics.events import Event

SESSION_EVENTS = ("session_opened", "session_closed")


@dataclass(frozen=True)
class Session:
    company_id: str
    session_id: str
    opened_ms: int
    closed: bool = False
    reason: str | None = None


def idle_close_event(company_id: str, session_id: str) -> Event:
    """The agents' `session_closed` for an idle session: one id per session, so workers that both decide to
    close it produce the same fact (consumers deduplicate on the id)."""
    return Event.new("session_closed", company_id, event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"idle:{company_id}:{session_id}")),
                     session_id=session_id, reason="idle")


CLOSED_KEPT = 100_000  # closed sessions remembered (to refuse their jobs by name); older ones read as unknown


class CompanySessions:
    """Sessions by (company, id); thread-safe, idempotent. Open sessions are all kept (the agents close the
    idle ones); of the closed, the latest `closed_kept`, so what the agents hold does not grow with every
    session ever opened: a job naming a session closed long ago is refused as unknown rather than closed."""

    def __init__(self, closed_kept: int = CLOSED_KEPT) -> None:
        self._sessions: dict[tuple[str, str], Session] = {}
        self._closed: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._unfolded: set[tuple[str, str]] = set()  # closed, their results not yet folded (`take_closed`)
        self.closed_kept = closed_kept
        self._lock = threading.Lock()

    def apply(self, event: Event) -> None:
        key = (event.company_id, str(event["session_id"]))
        with self._lock:
            if event.type == "session_opened" and key not in self._sessions:
                self._sessions[key] = Session(*key, int(event.occurred_at.timestamp() * 1000))
            elif event.type == "session_closed":
                known = self._sessions.get(key)
                opened = known.opened_ms if known else int(event.occurred_at.timestamp() * 1000)
                self._sessions[key] = Session(*key, opened, True, event.data.get("reason"))
                self._closed[key] = None
                self._unfolded.add(key)
                while len(self._closed) > self.closed_kept:
                    self._sessions.pop(self._closed.popitem(last=False)[0], None)

    def get(self, company_id: str, session_id: str) -> Session | None:
        with self._lock:
            return self._sessions.get((company_id, session_id))

    def take_closed(self) -> list[tuple[str, str]]:
        """The (company, session)s closed since the last call (all closed ones after a restart): the agents fold
        their results (`context.events.session_fold`); one with nothing left to fold costs a lookup."""
        with self._lock:
            taken, self._unfolded = sorted(self._unfolded), set()
            return taken

    def fold_later(self, keys: list[tuple[str, str]]) -> None:
        """Taken sessions not folded after all (the broker away): the next `take_closed` returns them again."""
        with self._lock:
            self._unfolded.update(keys)

    def open_sessions(self) -> list[Session]:
        with self._lock:
            return [s for s in self._sessions.values() if not s.closed]

    def refusal(self, company_id: str, session_id: str | None) -> tuple[str, str] | None:
        """Why a job naming `session_id` cannot be accepted (reason, kind), or None when it can."""
        if not session_id:
            return None
        found = self.get(company_id, session_id)
        if found is None:  # another company's session is unknown here, exactly like one that never existed
            return f"session {session_id} is unknown to company {company_id}", "unknown_session"
        if found.closed:
            return f"session {session_id} is closed ({found.reason or 'closed'})", "session_closed"
        return None
