"""Who a Kafka client is: one SASL/SCRAM principal per part, with passwords generated at set-up into a file only
its owner can read (mode 0600), next to the broker's data.

The embedded broker (`topics.broker`) creates the file when it formats its storage and registers every principal's
SCRAM credential there; compose gets the same principals from `cda kafka credentials --env-file .env`. A client
reads its own principal's password from `CDA_KAFKA_PASSWORD` or from the file; with neither, it connects without
authentication (a broker run without it, or testcontainers' Kafka).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.settings import Settings
from topics.errors import TopicsError

# The parts, each its own principal (ACLs in `topics.access`), and the operator: the person at the CLI, a super user.
PARTS: tuple[str, ...] = ("api", "agents", "trainer", "inference", "projections")
OPERATOR = "operator"
# The broker's own principals: `broker` authenticates to itself (SCRAM), `controller` to its KRaft quorum (PLAIN).
BROKER, CONTROLLER = "broker", "controller"
PRINCIPALS: tuple[str, ...] = (*PARTS, OPERATOR)
SUPER_USERS: tuple[str, ...] = (BROKER, CONTROLLER, OPERATOR)
MECHANISM = "SCRAM-SHA-256"


class CredentialsError(TopicsError):
    """A principal is unknown, or its password cannot be read."""


@dataclass(frozen=True)
class Login:
    """A principal and its password, as a client presents them."""

    principal: str
    password: str

    def librdkafka(self) -> dict[str, Any]:
        return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": MECHANISM,
                "sasl.username": self.principal, "sasl.password": self.password}

    def __repr__(self) -> str:  # never a password in a log line or a traceback
        return f"Login({self.principal!r}, password=***)"


def credentials_file(settings: Settings) -> Path:
    """Where the local broker keeps its principals' passwords (`CDA_KAFKA_CREDENTIALS` overrides)."""
    return settings.kafka_credentials or settings.kafka_dir / "credentials.json"


def generate(path: Path) -> dict[str, str]:
    """New random passwords for every principal, written to `path` readable by its owner only."""
    passwords = {name: secrets.token_urlsafe(24) for name in (*PRINCIPALS, BROKER, CONTROLLER)}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, json.dumps(passwords, indent=2) + "\n")
    return passwords


def write_private(path: Path, text: str) -> None:
    """Write `text` to a file created with mode 0600 (never world-readable, not even for a moment)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)


def read(path: Path) -> dict[str, str] | None:
    """Every principal's password from `path`, or None when there is no such file."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"cannot read the Kafka credentials in {path}: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise CredentialsError(f"{path} is not a map of principal to password")
    return data


def principal_of(settings: Settings) -> str:
    """The principal this process connects as: `CDA_KAFKA_PRINCIPAL`, else the operator's."""
    return settings.kafka_principal or OPERATOR


def login(settings: Settings) -> Login | None:
    """This process's login, or None when no password is configured (a broker without authentication)."""
    principal = principal_of(settings)
    if settings.kafka_password is not None:
        return Login(principal, settings.kafka_password.get_secret_value())
    passwords = read(credentials_file(settings))
    if passwords is None:
        return None
    if principal not in passwords:
        raise CredentialsError(f"no Kafka principal {principal!r} in {credentials_file(settings)}; "
                               f"it has: {', '.join(sorted(p for p in passwords if p in PRINCIPALS))}")
    return Login(principal, passwords[principal])


def as_part(settings: Settings, part: str) -> Settings:
    """The settings of a part's process (or of a part run inside another's, like the API's embedded projections):
    its own principal from the credentials file. A password given explicitly keeps the principal given with it."""
    if part not in PARTS:
        raise CredentialsError(f"unknown part {part!r}; the parts are: {', '.join(PARTS)}")
    return settings if settings.kafka_password is not None else settings.model_copy(update={"kafka_principal": part})


def env_file(passwords: dict[str, str]) -> str:
    """The `.env` compose reads: one password variable per principal (`CDA_KAFKA_<PRINCIPAL>_PASSWORD`)."""
    return "".join(f"CDA_KAFKA_{name.upper()}_PASSWORD={passwords[name]}\n"
                   for name in (*PRINCIPALS, BROKER, CONTROLLER) if name in passwords)
