"""A small process supervisor: each part of cda is a child process that is started in order, probed,
restarted with backoff when it dies, and stopped in reverse order — so one command can run the whole product
and a dead part comes back by itself instead of leaving the rest waiting on it.

The state of every part is written to a status file after each change, so another process (`cda status`)
can answer without talking to this one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.children import die_with_parent, end_owned, owned_env
from core.errors import CdaError

# states a part goes through; the table and `cda status` show them as they are
PENDING, STARTING, READY, RUNNING, RESTARTING, STOPPING, STOPPED, EXTERNAL, FAILED = (
    "pending", "starting", "ready", "running", "restarting", "stopping", "stopped", "external", "failed")


class SupervisorError(CdaError):
    """A part could not be started at all (its command is missing), or another supervisor already runs."""


@dataclass(frozen=True)
class PartSpec:
    """What to run for one part and how to tell it is ready.

    `probe` answers whether the part serves (None: being alive is all there is to know); `stop_timeout_s` is
    how long a SIGTERM may take before SIGKILL (vLLM and the broker need longer than a consumer).
    """

    name: str
    command: Sequence[str]
    address: str = ""
    probe: Callable[[], bool] | None = None
    stop_timeout_s: float = 30.0


@dataclass
class PartStatus:
    """What the status file says about one part."""

    name: str
    address: str
    state: str
    pid: int | None = None
    restarts: int = 0
    since: float = field(default_factory=time.time)
    detail: str = ""
    log: str = ""


@dataclass(frozen=True)
class Backoff:
    """Restart pauses: `first` doubling up to `most`; a part that stayed up `healthy_after_s` starts again at `first`."""

    first_s: float = 1.0
    most_s: float = 30.0
    healthy_after_s: float = 60.0
    probe_every_s: float = 5.0  # a ready part is asked this often (one that is starting, every tick)
    # a part that was ready and has not answered its probe for this long is ended and started again: a process
    # can live on wedged (seen: librdkafka aborting in a thread while chDB's signal handler held the process up).
    # Longer than a part may rightly be unready: inference while it starts its vLLM again (up to 180 s)
    unready_restart_s: float = 300.0

    def pause(self, failures: int) -> float:
        return min(self.most_s, self.first_s * 2 ** max(0, failures - 1))


class Part:
    """One supervised child process and its status."""

    def __init__(self, spec: PartSpec, env: dict[str, str], log_dir: Path, owner: str = "") -> None:
        self.spec = spec
        self.owner = owner or f"part:{log_dir.resolve()}/{spec.name}"  # what its processes carry (core.children)
        self.env = owned_env(env, self.owner)
        self.log_path = log_dir / f"{spec.name}.log"
        self.status = PartStatus(spec.name, spec.address, PENDING, log=str(self.log_path))
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.failures = 0  # deaths since the part last stayed up long enough
        self.restart_at: float | None = None
        self.probed_at = 0.0
        self.ready_at: float | None = None  # when the probe last answered, since the last start
        self.ended_why: str | None = None  # why the supervisor itself ended the process it restarts

    def start(self) -> None:
        left = end_owned(self.owner)  # what an earlier run of this part left (its own children included)
        with self.log_path.open("ab") as log:
            try:
                # its own session: a terminal's Ctrl-C reaches the supervisor only, which stops the parts in order;
                # the kernel kills it when the supervisor dies, however
                self.process = subprocess.Popen(list(self.spec.command), env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True,
                                                preexec_fn=die_with_parent())
            except OSError as exc:
                raise SupervisorError(f"part {self.spec.name}: cannot run {self.spec.command[0]}: {exc.strerror}") from None
        self.started_at = time.monotonic()
        self.restart_at = None
        self.ready_at = None
        self._set(STARTING, pid=self.process.pid, detail=f"ended {left} process(es) an earlier run left" if left else "")

    def _restart_later(self, backoff: Backoff, why: str) -> bool:
        """Count one more death and schedule the restart after the backoff's pause for it; RESTARTING shown."""
        self.failures += 1
        pause = backoff.pause(self.failures)
        self.restart_at = time.monotonic() + pause
        return self._set(RESTARTING, detail=f"{why}; restart #{self.status.restarts + 1} in {pause:g}s")

    def _set(self, state: str, pid: int | None = None, detail: str | None = None) -> bool:
        changed = state != self.status.state or (detail is not None and detail != self.status.detail)
        if state != self.status.state:
            self.status.since = time.time()
        self.status.state = state
        if pid is not None:
            self.status.pid = pid
        if detail is not None:
            self.status.detail = detail
        return changed

    def check(self, backoff: Backoff, stopping: bool) -> bool:
        """Advance the part's state: probe it, notice its death, restart it when its pause is over. Returns
        whether the status changed (so the table and the file are refreshed)."""
        if self.process is None:
            return False
        code = self.process.poll()
        now = time.monotonic()
        if code is None:
            if self.failures and now - self.started_at >= backoff.healthy_after_s:
                self.failures = 0
            if self.spec.probe is None:
                return self._set(RUNNING)  # the detail of a restart stays: the table says the part came back
            if self.status.state == READY and now - self.probed_at < backoff.probe_every_s:
                return False
            self.probed_at = now
            if _safe(self.spec.probe):
                self.ready_at = now
                return self._set(READY)
            if self.ready_at is not None and now - self.ready_at >= backoff.unready_restart_s:
                self.ended_why = f"not ready for {now - self.ready_at:.0f}s after being ready, ended"
                self._end(self.process, min(self.spec.stop_timeout_s, 10.0))
                return self._restart_later(backoff, self.ended_why)
            return self._set(STARTING)
        if stopping:
            return self._set(STOPPED, detail=exit_text(code))
        if self.restart_at is None:
            return self._restart_later(backoff, exit_text(code))
        if now >= self.restart_at:
            self.status.restarts += 1
            why, self.ended_why = self.ended_why, None
            self.start()
            self.status.detail = f"restarted ({self.status.restarts}x); last {why or exit_text(code)}"
            return True
        return False

    def _end(self, process: subprocess.Popen[bytes], wait_s: float) -> None:
        """SIGTERM the part's process group, SIGKILL it past `wait_s` (a wedged process may ignore SIGTERM)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
                process.wait(wait_s)
                return
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue
        process.wait(10)

    def signal_stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self._set(STOPPING)
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def wait_stopped(self) -> None:
        """Wait for the SIGTERM to be honoured, then SIGKILL the part's whole process group."""
        if self.process is None:
            return
        try:
            code = self.process.wait(self.spec.stop_timeout_s)
            detail = exit_text(code)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            code = self.process.wait(10)
            detail = f"killed after {self.spec.stop_timeout_s:.0f}s"
        self._set(STOPPED, detail=detail)


def exit_text(code: int) -> str:
    """`exit 3`, or the signal that ended the process (`SIGKILL`), as Popen reports it (a negative code)."""
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit {code}"


def _safe(probe: Callable[[], bool]) -> bool:
    try:
        return bool(probe())
    except Exception:  # a probe that cannot tell means not ready, never a dead supervisor
        return False


@dataclass
class StatusFile:
    """`<home>/up/status.json`: the supervisor's pid and each part's status, replaced atomically."""

    path: Path

    def write(self, supervisor_pid: int, parts: Sequence[PartStatus], stopped: bool = False) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {"supervisor_pid": supervisor_pid, "stopped": stopped, "written_at": time.time(),
                "parts": [asdict(p) for p in parts]}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body, indent=1))
        os.replace(tmp, self.path)

    def read(self) -> dict[str, object] | None:
        try:
            return dict(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise SupervisorError(f"{self.path}: unreadable status file ({exc}); remove it") from None


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Supervisor:
    """Parts started in order, watched every `tick_s`, restarted with backoff, stopped in reverse order.

    `on_change` is called with every part's status after any change (the live table); the status file is
    written at the same moments. Stop it by raising SystemExit/KeyboardInterrupt in `run` (signals) or by
    setting `should_stop`.
    """

    def __init__(self, parts: Sequence[Part], status_file: StatusFile, backoff: Backoff = Backoff(),
                 on_change: Callable[[list[PartStatus]], None] = lambda _s: None, tick_s: float = 0.5) -> None:
        self.parts = list(parts)
        self.status_file = status_file
        self.backoff = backoff
        self.on_change = on_change
        self.tick_s = tick_s
        self.should_stop = False

    def statuses(self) -> list[PartStatus]:
        return [p.status for p in self.parts]

    def _changed(self, stopped: bool = False) -> None:
        self.status_file.write(os.getpid(), self.statuses(), stopped)
        self.on_change(self.statuses())

    def run(self) -> None:
        """Start every part, then watch them until stopped; the parts are stopped whatever ends the loop."""
        try:
            for part in self.parts:
                self._changed()
                part.start()
                self._changed()
            while not self.should_stop:
                if any([part.check(self.backoff, stopping=False) for part in self.parts]):
                    self._changed()
                time.sleep(self.tick_s)
        finally:
            self.stop()

    def stop(self) -> None:
        """SIGTERM each part in reverse order of start and wait for it before the next (the broker, first
        started, is last)."""
        for part in reversed(self.parts):
            part.signal_stop()
            self._changed()
            part.wait_stopped()
            self._changed()
        self._changed(stopped=True)
