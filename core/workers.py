"""How every long-running worker of cda runs: in a thread that records its death (so readiness can say
so), looping "join, consume until stopped; on a transient outage wait and join again" until stopped.

Re-joining is the recovery: nothing was committed past the failed record, so the group hands it back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from core.retry import Stopped, outlast

log = logging.getLogger(__name__)


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.05,
               stop: threading.Event | None = None) -> bool:
    """Poll `predicate` until it holds (True), the time is up or `stop` is set (False)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0 or (stop is not None and stop.is_set()):
            return False
        time.sleep(min(interval_s, remaining))


def run_until_stopped(stop: threading.Event, session: Callable[[threading.Event], None], *, name: str,
                      pause_s: float = 0.5, max_pause_s: float = 10.0) -> None:
    """Call `session(stop)` again after each transient failure (with growing pauses) until `stop` is set.

    A session joins its consumer group and consumes until `stop`. A non-transient error escapes: that is
    a bug, and the worker thread records it so that readiness turns false.
    """
    while not stop.is_set():
        try:
            outlast(lambda: session(stop), f"{name} interrupted by an outage, joining again", stop, pause_s, max_pause_s)
        except Stopped:
            return


class WorkerThread:
    """A daemon thread running `target(stop)`; `alive` is False once it ended for any reason but `stop`."""

    def __init__(self, name: str, target: Callable[[threading.Event], None], stop: threading.Event) -> None:
        self.name = name
        self.stop = stop
        self.error: BaseException | None = None
        self._target = target
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            self._target(self.stop)
        except BaseException as exc:  # recorded for readiness and logged; the thread is over either way
            self.error = exc
            log.exception("worker %s died", self.name)

    def start(self) -> WorkerThread:
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def healthy(self) -> bool:
        """Running, or ended because it was asked to stop."""
        return self.alive or (self.stop.is_set() and self.error is None)

    def join(self, timeout_s: float | None = None) -> None:
        self._thread.join(timeout_s)
