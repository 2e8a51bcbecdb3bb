"""Requests that hold a connection open (a job's event stream, a `?wait` read), capped per API key: without a
cap one key could open thousands and starve every other company of the API's workers and the store's reads."""

from __future__ import annotations

import threading
from collections import Counter

from api.errors import ApiError


class Hold:
    """One open request's place; released once, by `release` or when dropped unused (a stream never started)."""

    def __init__(self, holds: Holds, key_id: str) -> None:
        self._holds, self._key_id, self._released = holds, key_id, False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._holds._release(self._key_id)

    def __del__(self) -> None:
        self.release()


class Holds:
    def __init__(self, per_key: int) -> None:
        self.per_key = per_key
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    def take(self, key_id: str) -> Hold:
        """A place for one more open request of `key_id`, or 429 naming the cap."""
        with self._lock:
            if self._open[key_id] >= self.per_key:
                raise ApiError(429, f"this key holds {self.per_key} open event streams and waits already "
                                    "(CDA_API_KEY_HOLDS); close one or poll without wait", {"Retry-After": "1"})
            self._open[key_id] += 1
        return Hold(self, key_id)

    def open_of(self, key_id: str) -> int:
        with self._lock:
            return self._open[key_id]

    def _release(self, key_id: str) -> None:
        with self._lock:
            self._open[key_id] -= 1
            if self._open[key_id] <= 0:
                del self._open[key_id]
