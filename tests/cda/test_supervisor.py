"""The supervisor of `cda up` on plain child processes (no broker): a part that dies is restarted with growing
pauses and the table says so, a ready part is probed, the status file answers another process, and stopping goes
in reverse order of start, SIGTERM first and SIGKILL only for a part that ignores it."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from cda.supervisor import READY, RESTARTING, RUNNING, STOPPED, Backoff, Part, PartSpec, StatusFile, Supervisor, pid_alive
from tests.helpers import eventually

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]
# ignores SIGTERM: the supervisor must SIGKILL it after its stop timeout
STUBBORN = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"]


def test_restart_with_backoff_status_file_and_stop_in_reverse_order(tmp_path: Path) -> None:
    flag = tmp_path / "ready"
    # dies at once the first two times (a counter file), then stays up
    counter = tmp_path / "starts"
    flaky = [sys.executable, "-c", f"import pathlib, sys, time; p = pathlib.Path({str(counter)!r}); "
             "n = int(p.read_text()) if p.exists() else 0; p.write_text(str(n + 1)); "
             "sys.exit(3) if n < 2 else time.sleep(600)"]
    specs = [PartSpec("first", SLEEPER), PartSpec("flaky", flaky),
             PartSpec("probed", SLEEPER, "http://example.invalid", probe=flag.exists),
             PartSpec("stubborn", STUBBORN, stop_timeout_s=1)]
    parts = [Part(s, {}, tmp_path) for s in specs]
    status_file = StatusFile(tmp_path / "status.json")
    seen: list[tuple[str, str, str]] = []

    def record(statuses: list) -> None:  # type: ignore[type-arg]
        for s in statuses:
            if not seen or (s.name, s.state, s.detail) not in seen:
                seen.append((s.name, s.state, s.detail))

    supervisor = Supervisor(parts, status_file, Backoff(first_s=0.2, most_s=1.0, probe_every_s=0.1), record, tick_s=0.05)
    thread = threading.Thread(target=supervisor.run)
    thread.start()
    try:
        flaky_part = parts[1]
        eventually(lambda: flaky_part.status.restarts == 2 and flaky_part.status.state == RUNNING, 30, "flaky restarted twice")
        assert "restarted (2x); last exit 3" in flaky_part.status.detail
        restarting = [d for n, st, d in seen if n == "flaky" and st == RESTARTING]
        assert [d.split(" in ")[1] for d in restarting] == ["0.2s", "0.4s"]  # the pause doubles
        assert parts[2].status.state != READY  # its probe does not answer yet
        flag.touch()
        eventually(lambda: parts[2].status.state == READY, 10, "the probed part ready once its probe answers")
        # another process reads the file: pids and states
        body = status_file.read()
        assert body is not None and body["supervisor_pid"] and not body["stopped"]
        by_name = {p["name"]: p for p in body["parts"]}  # type: ignore[union-attr]
        assert by_name["flaky"]["restarts"] == 2 and by_name["probed"]["state"] == READY
        pids = [p.status.pid for p in parts]
        assert all(pid_alive(pid) for pid in pids)
    finally:
        supervisor.should_stop = True
        thread.join(60)
    stopped = [n for n, st, _d in seen if st == STOPPED]
    assert stopped == ["stubborn", "probed", "flaky", "first"], stopped
    assert "killed after 1s" in parts[3].status.detail and parts[0].status.detail == "SIGTERM"
    assert not any(pid_alive(p.status.pid) for p in parts)
    final = status_file.read()
    assert final is not None and final["stopped"] is True


SUPERVISE = """
import sys, time
from pathlib import Path
from cda.supervisor import Backoff, Part, PartSpec, StatusFile, Supervisor
folder = Path(sys.argv[1])
# the part leaves a child of its own (no parent-death signal: it outlives the part unless ended)
part = [sys.executable, "-c", "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
        "'import time; time.sleep(600)']); time.sleep(600)"]
Supervisor([Part(PartSpec("leaver", part), {}, folder)], StatusFile(folder / "status.json"), Backoff(), tick_s=0.05).run()
"""


def test_a_supervisor_killed_outright_takes_its_parts_along_and_a_restart_ends_what_they_left(tmp_path: Path) -> None:
    """SIGKILL to the supervisor: the kernel kills its part (parent-death signal); the part's own child, left
    running, carries the part's owner id, and the part's next start ends it before anything else."""
    import os
    import signal
    import subprocess

    from core.children import alive, owned_by

    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISE, str(tmp_path)], cwd=Path(__file__).parents[2])
    part = Part(PartSpec("leaver", SLEEPER), {}, tmp_path)  # the same part as the supervisor's: the same owner id
    try:
        eventually(lambda: len(owned_by(part.owner)) == 2, 30, "the part and its child running")
        part_pid = StatusFile(tmp_path / "status.json").read()["parts"][0]["pid"]  # type: ignore[index]
        supervisor.kill()
        supervisor.wait(10)
        eventually(lambda: not alive(part_pid), 10, "the part killed with its supervisor")
        [left] = [p for p in owned_by(part.owner) if alive(p)]  # the part's child outlived it
        part.start()  # what `cda up` does for each part: ends what an earlier run of it left
        assert not [p for p in owned_by(part.owner) if p != part.process.pid and alive(p)]  # type: ignore[union-attr]
        assert not alive(left)
        assert "ended 1 process(es)" in part.status.detail
    finally:
        if part.process is not None:
            part.process.kill()
            part.process.wait(10)
        for pid in owned_by(part.owner):
            os.kill(pid, signal.SIGKILL)



def test_a_part_that_was_ready_and_stops_answering_is_ended_and_started_again(tmp_path: Path) -> None:
    """A process can live on wedged (librdkafka aborting in a thread while chDB's signal handler holds the process
    up): once ready, a part whose probe fails past `unready_restart_s` is ended (SIGKILL when it ignores SIGTERM)
    and started again; a part that never was ready is only waited for."""
    answering = tmp_path / "answering"
    answering.touch()
    parts = [Part(PartSpec("wedged", STUBBORN, "http://example.invalid", probe=answering.exists, stop_timeout_s=1),
                  {}, tmp_path),
             Part(PartSpec("never", SLEEPER, "http://example.invalid", probe=lambda: False), {}, tmp_path)]
    supervisor = Supervisor(parts, StatusFile(tmp_path / "status.json"),
                            Backoff(first_s=0.2, most_s=1.0, probe_every_s=0.1, unready_restart_s=1.0), tick_s=0.05)
    thread = threading.Thread(target=supervisor.run)
    thread.start()
    try:
        wedged = parts[0]
        eventually(lambda: wedged.status.state == READY, 30, "the part ready")
        first_pid = wedged.status.pid
        answering.unlink()  # alive, but no longer answering
        # read from another thread: the count, the new pid and the detail are set one after another
        eventually(lambda: wedged.status.restarts == 1 and wedged.status.pid != first_pid
                   and "not ready for" in wedged.status.detail, 30, "the wedged part started again")
        assert first_pid is not None and not pid_alive(first_pid)  # SIGTERM ignored: it was SIGKILLed
        assert parts[1].status.restarts == 0 and pid_alive(parts[1].status.pid or 0)  # never ready: left to start
    finally:
        supervisor.should_stop = True
        thread.join(60)
