"""The compose stack really starts (docker-compose.yml with deploy/compose.local.yml: images built here, host
networking, no registry), ends a first job, and runs the main job from the host: `cda demo` creates acme through
the API, imports its tools, trains its adapter in the trainer's container, gates and serves it in the inference
container and sends every record to acme's API; then the stack is torn down with its volumes. This is also BENCH
D1's brief run (`benchmarks/d1_compose.py --demo`).

Runs where a Docker engine answers and docker-compose is installed (`apt-get install docker.io docker-compose
debootstrap`, `dockerd &`); the first run builds the images (scripts/docker_images.sh, some minutes)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _docker_answers() -> bool:
    if not (shutil.which("docker") and shutil.which("docker-compose")):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


pytestmark = [pytest.mark.docker, pytest.mark.timeout(5400),
              pytest.mark.skipif(not _docker_answers(), reason="no Docker engine answers (or no docker-compose)")]


def test_the_compose_stack_starts_runs_the_demo_from_the_host_and_goes_away() -> None:
    run = subprocess.run([sys.executable, "benchmarks/d1_compose.py", "--demo"], cwd=ROOT, capture_output=True,
                         text=True, timeout=5000)
    print(run.stdout[-6000:])
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    line = re.search(r"^BENCH D1 up_to_first_job_s=([\d.]+) first_job=(\w+) image_mb=([\d.]+) kafka_image_mb=([\d.]+)$",
                     run.stdout, re.MULTILINE)
    assert line, run.stdout[-3000:]
    assert line.group(2) in ("completed", "failed") and float(line.group(3)) > 0  # a job the stack ended
    assert "cda demo exit 0" in run.stdout, run.stdout[-4000:]
    assert "gate passed" in run.stdout and "served by vLLM" in run.stdout
    assert "6 of 6 completed at the example API" in run.stdout, run.stdout[-4000:]  # every record reached acme's API
    # (how many calls are right is the adapter's, measured on the host's stack by tests/cda/test_up_demo_e2e.py; here
    # acme's history already holds the first job's base-model call)
    assert re.search(r"[456] of 6 right", run.stdout), run.stdout[-4000:]
    assert re.search(r"stack cdabench\w+ down: exit 0", run.stderr), run.stderr[-2000:]
    left = subprocess.run(["docker", "ps", "-q", "--filter", "name=cdabench"], capture_output=True, text=True)
    assert left.stdout.strip() == "", left.stdout  # nothing of it still runs
