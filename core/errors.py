"""The one error root of cda, and the one line that decides whether a failure is worth retrying.

Every package's errors derive from `CdaError`, so the CLI, the workers and the API handle them in one
place. A failure is *transient* when the same work may succeed later unchanged (a broker, store, model
server or company API that is down or overloaded): workers retry it with backoff and commit nothing.
Anything else is *deterministic*: retrying cannot help, so the record goes to `dead_letters` with the
reason and the partition moves on.
"""

from __future__ import annotations


class CdaError(Exception):
    """Base of every error cda raises on purpose; its message names the field, topic or company at fault."""


class TransientError(CdaError):
    """A failure that may pass unchanged: retry with backoff, commit nothing, never dead-letter."""


def is_transient(exc: BaseException) -> bool:
    """True when `exc` (or an error it was raised from) is marked transient."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, TransientError):
            return True
        seen.add(id(current))
        current = current.__cause__
    return False
