"""Child processes that die with their parent, and a start that ends what an earlier parent left behind.

A part killed outright (SIGKILL, the OOM killer) runs no cleanup: its children kept running, held their ports,
and the next start looped on "address in use". Two mechanisms close that:

- `die_with_parent`: the kernel sends the child SIGKILL when the process that started it dies
  (`PR_SET_PDEATHSIG`, Linux; kept across exec). Only for children started from a thread that lives as long
  as its process: the signal follows the starting *thread*.
- `owned_env` / `end_owned`: every child carries its owners in `CDA_OWNERS` (inherited by its own children);
  a start first ends every process still carrying its owner id, whoever started it. Only this user's
  processes are read (`/proc/<pid>/environ`), and only those carrying the exact id are signalled.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

OWNERS = "CDA_OWNERS"
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that has the kernel SIGKILL the child once its parent dies (None off Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: between fork and exec the child only calls it

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)
    return arm


def owned_env(env: Mapping[str, str], owner: str) -> dict[str, str]:
    """`env` with `owner` added to the child's owners (its own children inherit them)."""
    owners = [o for o in env.get(OWNERS, "").split(";") if o and o != owner]
    return {**env, OWNERS: ";".join([*owners, owner])}


def owned_by(owner: str) -> list[int]:
    """Live processes of this user carrying `owner` among their owners (never this process)."""
    found: list[int] = []
    wanted = owner.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or another user's
            continue
        for variable in environ.split(b"\0"):
            if variable.startswith(OWNERS.encode() + b"=") and wanted in variable.split(b"=", 1)[1].split(b";"):
                found.append(int(entry.name))
                break
    return found


def end_owned(owner: str, wait_s: float = 10.0) -> int:
    """SIGTERM every process left carrying `owner`, SIGKILL what outlives `wait_s`; how many there were."""
    pids = owned_by(owner)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        _signal(pid, signal.SIGKILL)
    return len(pids)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
