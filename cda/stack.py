"""The parts of cda on the embedded defaults, as `cda up` runs them: the broker, inference (vLLM, the adapter
lifecycle and the gateway), the trainer, the agents, the API (with chDB, the projections run inside it: one
process may hold the folder), the projections on their own with a ClickHouse server, and acme's example API.

Every part but the broker is the same `cda` command a user runs alone, so `cda up`, the compose file and a
deployment spread over machines run the same code.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from pathlib import Path

from cda.supervisor import EXTERNAL, FAILED, READY, RESTARTING, STARTING, STOPPED, STOPPING, Backoff, Part, PartSpec, PartStatus
from core.children import die_with_parent, owned_env
from core.health import http_ready
from core.settings import Settings, settings_env
from topics.broker import LocalBroker, from_settings

OPERATOR_KEY_FILE = "operator.key"


def up_dir(settings: Settings) -> Path:
    return settings.home / "up"


def up_owner(settings: Settings) -> str:
    """What every process of one home's `cda up` carries (`core.children`): a new `cda up` ends what a killed
    one left."""
    return f"up:{settings.home.resolve()}"


def operator_key(settings: Settings, create: bool = False) -> str | None:
    """The operator key: the configured one, else the one `cda up` keeps in `<home>/up/operator.key` (mode 0600),
    so the demo can create its company through the API on a machine nobody configured."""
    if settings.api_operator_key is not None and settings.api_operator_key.get_secret_value():
        return settings.api_operator_key.get_secret_value()
    path = up_dir(settings) / OPERATOR_KEY_FILE
    if path.exists():
        return path.read_text().strip() or None
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    key = f"op_{secrets.token_urlsafe(32)}"
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


def _local(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def api_url(settings: Settings) -> str:
    return f"http://{_local(settings.api_host)}:{settings.api_port}"


def _cda(*args: str) -> list[str]:
    return [sys.executable, "-m", "cda.cli.main", *args]


def part_specs(settings: Settings, example_api: bool = False, external_vllm: bool = False) -> list[PartSpec]:
    """The parts after the broker, in the order they start (and the reverse of the order they stop)."""
    embedded = settings.clickhouse_url is None
    specs = [
        PartSpec("inference", _cda("inference", "serve", *(["--external"] if external_vllm else [])),
                 f"{settings.inference_url} (vLLM {', '.join(settings.vllm_backend_urls)}"
                 f"{', external' if external_vllm else ''})",
                 http_ready(f"{settings.inference_url}/health/ready"), stop_timeout_s=60),
        PartSpec("trainer", _cda("trainer", "run"), "consumes lora_training_requests", stop_timeout_s=60),
        PartSpec("agents", _cda("agents", "run"), f"consumer group {settings.topic_prefix}{settings.agents_group}"),
    ]
    if not embedded:
        specs.append(PartSpec("projections", _cda("projections", "run"), f"into {settings.clickhouse_url}"))
    specs.append(PartSpec("api", _cda("api", "serve"), api_url(settings) + (" (+ projections, chDB)" if embedded else ""),
                          http_ready(f"{api_url(settings)}/health/ready")))
    if example_api:
        specs.append(PartSpec("example-api", _cda("example-api", "serve"), settings.example_api_url,
                              http_ready(f"{settings.example_api_url.rstrip('/')}/health")))
    return specs


class BrokerPart(Part):
    """The Kafka broker as a part: started from the jars under the cda home (KRaft, one node) unless the
    bootstrap names another broker, or the local one was already running (then it is left running at the end)."""

    def __init__(self, settings: Settings, env: dict[str, str], log_dir: Path) -> None:
        self.broker: LocalBroker = from_settings(settings)
        self.settings = settings
        self.local = settings.kafka_bootstrap == self.broker.bootstrap
        super().__init__(PartSpec("kafka", [], settings.kafka_bootstrap), env, log_dir)
        self.log_path = self.broker.log_file
        self.status.log = str(self.log_path)
        self.owned = False

    def start(self) -> None:
        from topics.admin import apply_catalog

        if not self.local:
            self._set(EXTERNAL, detail="not started by cda up")
        elif self.broker.pid() is not None:
            self._set(READY, pid=self.broker.pid(), detail="already running before cda up; left running")
        else:
            self._set(STARTING)
            self.owned = True  # before start: a stop signal during start-up still stops it (by its pid file)
            self.broker.start(env=self.env, preexec_fn=die_with_parent())
            self.started_at = time.monotonic()
            self._set(READY, pid=self.broker.pid(), detail="")
        apply_catalog(self.settings)

    def check(self, backoff: Backoff, stopping: bool) -> bool:
        if not self.owned or stopping:
            return False
        if self.broker.pid() is not None:
            if self.failures and time.monotonic() - self.started_at >= backoff.healthy_after_s:
                self.failures = 0
            return self._set(READY, detail="" if self.status.state == READY else self.status.detail)
        if self.restart_at is None:
            return self._restart_later(backoff, "exited")
        if time.monotonic() >= self.restart_at:
            self.status.restarts += 1
            self.restart_at = None
            try:
                self.broker.start(env=self.env, preexec_fn=die_with_parent())
            except Exception as exc:  # noqa: BLE001 - shown in the table; tried again after the next pause
                self._set(FAILED, detail=str(exc).splitlines()[0][:120])
                self.restart_at = time.monotonic() + backoff.pause(self.failures + 1)
                return True
            self.started_at = time.monotonic()
            self._set(READY, pid=self.broker.pid(), detail=f"restarted ({self.status.restarts}x)")
            return True
        return False

    def signal_stop(self) -> None:
        if self.owned:
            self._set(STOPPING)

    def wait_stopped(self) -> None:
        if self.owned:
            self.broker.stop()
            self._set(STOPPED, detail="clean shutdown (SIGTERM)")


def build_parts(settings: Settings, example_api: bool = False, external_vllm: bool = False) -> list[Part]:
    """The broker first, then every other part, each logging to `<home>/up/logs/<part>.log`."""
    logs = up_dir(settings) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = owned_env(settings_env(settings), up_owner(settings))
    api_env = {**env, "CDA_API_OPERATOR_KEY": operator_key(settings, create=True) or ""}
    parts: list[Part] = [BrokerPart(settings, env, logs)]
    for spec in part_specs(settings, example_api, external_vllm):
        parts.append(Part(spec, api_env if spec.name == "api" else env, logs))
    return parts


def probe_status(settings: Settings, statuses: list[PartStatus]) -> dict[str, bool | None]:
    """For `cda status` in another terminal: whether each part answers now (None: it has no address to ask)."""
    probes = {s.name: s.probe for s in part_specs(settings, example_api=True)}
    answers: dict[str, bool | None] = {}
    for status in statuses:
        if status.name == "kafka":
            answers[status.name] = _broker_answers(settings)
        else:
            probe = probes.get(status.name)
            answers[status.name] = None if probe is None else probe()
    return answers


def _broker_answers(settings: Settings) -> bool:
    import socket

    host, _, port = settings.kafka_bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host or "localhost", int(port)), timeout=1.0):
            return True
    except (OSError, ValueError):
        return False


UP_STATES = (READY, "running", EXTERNAL)
WAITING_STATES = (STARTING, RESTARTING)
