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
from pathlib import Path

from cda.broker_part import BrokerPart
from cda.supervisor import EXTERNAL, READY, RESTARTING, STARTING, Part, PartSpec, PartStatus
from core.children import owned_env
from core.health import http_ready
from core.settings import Settings, settings_env

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
            answers[status.name] = _broker_answers(status.address or settings.kafka_bootstrap)
        else:
            probe = probes.get(status.name)
            answers[status.name] = None if probe is None else probe()
    return answers


def _broker_answers(bootstrap: str) -> bool:
    import socket

    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host or "localhost", int(port)), timeout=1.0):
            return True
    except (OSError, ValueError):
        return False


UP_STATES = (READY, "running", EXTERNAL)
WAITING_STATES = (STARTING, RESTARTING)
