"""Helpers every test shares: free loopback ports, waiting for a condition, workers run for a block."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from core.workers import WorkerThread, wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_free(port: int) -> bool:
    """Whether a server could listen on the loopback `port` now (nothing holds it)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def eventually(predicate: Callable[[], bool], timeout_s: float = 30.0, what: str = "the condition",
               interval_s: float = 0.05) -> None:
    """Wait for `predicate`; fail the test naming `what` when it does not hold in time."""
    if not wait_until(predicate, timeout_s, interval_s):
        raise AssertionError(f"{what} did not hold within {timeout_s:.0f}s")


@contextmanager
def running(target: Callable[[threading.Event], None], name: str = "worker",
            join_s: float = 30.0) -> Iterator[WorkerThread]:
    """Run `target(stop)` in a worker thread for the block; stop and join it after, re-raising its error."""
    worker = WorkerThread(name, target, threading.Event()).start()
    try:
        yield worker
    finally:
        worker.stop.set()
        worker.join(join_s)
    if worker.error is not None:
        raise AssertionError(f"worker {name} died: {worker.error!r}") from worker.error


def fake_adapter(folder: Path, base: str, rank: int = 8, **extra: object) -> Path:
    """An adapter folder as the checks read it (config and weights), for `base`; not one vLLM could serve."""
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": rank, "base_model_name_or_path": base,
                                                            "target_modules": ["q_proj"], **extra}))
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"w": np.zeros((2, 2), dtype=np.float32)}, str(folder / "adapter_model.safetensors"))
    return folder
