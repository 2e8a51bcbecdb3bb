"""Stopping a service on SIGTERM as on Ctrl-C: both become `SystemExit` in the main thread, so the
`finally` blocks that stop child processes (a vLLM server, a broker) run.

Python's default SIGTERM ends the process at once, skipping every `finally`: children started in their
own session outlive it, re-parented to init and holding their ports. Compose, systemd and Kubernetes all
stop a service with SIGTERM.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def exit_on_signals(signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> Iterator[None]:
    """Within the block, the first of `signals` raises `SystemExit(128 + signal)`; later ones are logged and
    ignored so that the clean-up they started is not cut short. Call it from the main thread."""
    stopping = False

    def handler(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            log.warning("%s received while stopping; still stopping", signal.Signals(signum).name)
            return
        stopping = True
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
