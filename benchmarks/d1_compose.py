"""BENCH D1: the compose stack, from `docker-compose up` (images built) to the first job ended, and the image sizes.

Where no registry is reachable (here) the stack is docker-compose.yml with deploy/compose.local.yml: the images
scripts/docker_images.sh builds, host networking, every port moved to a free one. The first job is one record sent
through the API (`POST /company-automation/process`, the base model: no adapter yet) for acme, onboarded the way
`cda demo` onboards it. With `--demo`, `cda demo` then runs from the host against the stack (training acme's
adapter in the trainer's container, gating and serving it in the inference container) and its output is printed.
The stack is torn down with its volumes at the end.

    python benchmarks/d1_compose.py [--demo]
Prints `BENCH D1 up_to_first_job_s=… first_job=… image_mb=… kafka_image_mb=…`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import bench_line, free_port  # noqa: E402
from core.settings import Settings, settings_env  # noqa: E402
from topics.credentials import env_file, generate  # noqa: E402

PORTS = ("KAFKA", "KAFKA_CONTROLLER", "VLLM", "INFERENCE", "EXAMPLE_API", "API")


def compose(env: dict[str, str], project: str, *args: str, files: tuple[Path, ...] = (), timeout: float = 900
            ) -> subprocess.CompletedProcess[str]:
    named = files or (ROOT / "docker-compose.yml", ROOT / "deploy/compose.local.yml")
    return subprocess.run(["docker-compose", "--project-directory", str(ROOT), "-p", project,
                           *(arg for f in named for arg in ("-f", str(f))), "--profile", "demo", *args],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def rendered(env: dict[str, str], project: str, into: Path) -> Path:
    """docker-compose.yml with deploy/compose.local.yml as one file, without the published ports: a service on the
    host's network publishes nothing, and docker-compose 1.x refuses the two together (an override cannot drop
    a list of the file it overrides)."""
    import yaml

    merged = compose(env, project, "config")
    if merged.returncode != 0:
        raise SystemExit(f"docker-compose config failed:\n{merged.stderr[-3000:]}")
    config = yaml.safe_load(merged.stdout)
    for service in config["services"].values():
        if service.get("network_mode") == "host":
            service.pop("ports", None)
    into.write_text(yaml.safe_dump(config, sort_keys=False))
    return into


@contextmanager
def local_stack(home: Path) -> Iterator[tuple[Settings, dict[str, str], str]]:
    """The stack up under a fresh project (its passwords and operator key made here), and the settings with which
    the host reaches it as the operator; `down -v` afterwards, whatever happened."""
    ports = {name: free_port() for name in PORTS}
    passwords = generate(home / "credentials.json")
    operator_key = f"op_{secrets.token_urlsafe(24)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDA_")}
    env.update({f"CDA_LOCAL_{name}_PORT": str(port) for name, port in ports.items()})
    env.update(dict(line.split("=", 1) for line in env_file(passwords).splitlines()))
    env.update(CDA_CLICKHOUSE_PASSWORD="unused", CDA_GRAFANA_PASSWORD="unused", CDA_API_OPERATOR_KEY=operator_key)
    project = f"cdabench{uuid.uuid4().hex[:6]}"
    host = Settings(home=home / "host", kafka_bootstrap=f"127.0.0.1:{ports['KAFKA']}", kafka_principal="operator",
                    kafka_password=passwords["operator"], api_port=ports["API"],
                    inference_url=f"http://127.0.0.1:{ports['INFERENCE']}",
                    example_api_url=f"http://127.0.0.1:{ports['EXAMPLE_API']}", api_operator_key=operator_key)
    home.mkdir(parents=True, exist_ok=True)
    files = (rendered(env, project, home / "compose.yml"),)
    try:
        up = compose(env, project, "up", "-d", "--no-build", files=files)
        if up.returncode != 0:
            raise SystemExit(f"docker-compose up failed:\n{up.stdout[-3000:]}{up.stderr[-3000:]}")
        yield host, env, project
    finally:
        down = compose(env, project, "down", "-v", "--remove-orphans", files=files, timeout=300)
        print(f"stack {project} down: exit {down.returncode}", file=sys.stderr)


def first_job(host: Settings, timeout_s: float = 1800) -> str:
    """acme onboarded as `cda demo` onboards it, then one record through the API with the base model; its status."""
    from rich.console import Console

    from cda.demo import Demo, DemoOptions

    demo = Demo(host, Console(stderr=True), DemoOptions(stack_timeout_s=timeout_s))
    demo.wait_for_stack()
    demo.onboard()
    answer = demo.http.post("/company-automation/process", headers={"Authorization": f"Bearer {demo.key}"},
                            json={"task": "Bill the customer for the order", "data": {"customer": "c222", "amount": 5},
                                  "use_adapter": False})
    answer.raise_for_status()
    url = answer.json()["url"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = str(demo.http.get(httpx.URL(url).path, headers={"Authorization": f"Bearer {demo.key}"}).json()["status"])
        if status in ("completed", "failed"):
            return status
        time.sleep(0.5)
    raise SystemExit(f"the first job did not end within {timeout_s:.0f} s")


def image_mb(name: str) -> float:
    size = subprocess.run(["docker", "image", "inspect", name, "--format", "{{.Size}}"], capture_output=True, text=True)
    return round(int(size.stdout.strip() or 0) / 1e6, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--demo", action="store_true", help="then run `cda demo` against the stack")
    args = parser.parse_args()
    built = subprocess.run(["bash", "scripts/docker_images.sh"], cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if built.returncode != 0:
        raise SystemExit(f"building the images failed:\n{built.stderr[-3000:]}")
    home = Path(os.environ.get("TMPDIR", "/tmp")) / f"cda-d1-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    with local_stack(home) as (host, _env, _project):
        status = first_job(host)
        seconds = time.monotonic() - started
        if args.demo:
            demo = subprocess.run([sys.executable, "-m", "cda.cli.main", "demo", "--examples", "300", "--steps", "130",
                                   "--invoices", "4", "--wait", "900", "--html", str(home / "dashboard.html")],
                                  env={**settings_env(host), "COLUMNS": "220"}, cwd=home, capture_output=True,
                                  text=True, timeout=2400)
            print(demo.stdout + demo.stderr[-3000:])
            print(f"cda demo exit {demo.returncode}")
    bench_line("D1", up_to_first_job_s=round(seconds, 1), first_job=status, image_mb=image_mb("cda:latest"),
               kafka_image_mb=image_mb("cda-kafka:local"))


if __name__ == "__main__":
    main()
