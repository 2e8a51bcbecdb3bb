"""Secrets of company tools: events and tables hold only a *reference* (`env:NAME`, `file:/path`), and the
value is looked up when a call is made, so rotating a secret needs no new event and no event, table or
log ever holds one.

A reference is `scheme:rest`; the resolver asks the first backend of its list that handles the scheme.
The value is wrapped in `SecretValue`, whose repr and str hide it, so a stray log line or exception
message that formats it shows `***` rather than the secret.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from core.paths import is_within
from streams.errors import MissingSecret

MAX_SECRET_BYTES = 16_384


class SecretValue:
    """A secret's value; `reveal()` is the one way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretValue('***')"

    __str__ = __repr__


class SecretBackend(Protocol):
    """Resolves the part after `scheme:`; returns None when the secret is not there."""

    scheme: str

    def lookup(self, name: str) -> str | None: ...


class EnvSecrets:
    """`env:NAME`: an environment variable of the agents' process (or an injected mapping, for tests)."""

    scheme = "env"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    def lookup(self, name: str) -> str | None:
        environ = os.environ if self._environ is None else self._environ
        return environ.get(name) or None


class FileSecrets:
    """`file:/path`: a file's content without its trailing newline (the shape of mounted secrets).

    With `root`, only files under it are read, so a reference cannot point at any file the process can read."""

    scheme = "file"

    def __init__(self, root: Path | None = None) -> None:
        self._root = root

    def lookup(self, name: str) -> str | None:
        path = Path(name)
        if not path.is_absolute() or (self._root is not None and not is_within(path, self._root)):
            return None
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_SECRET_BYTES + 1)
        except OSError:
            return None
        if len(data) > MAX_SECRET_BYTES:
            return None
        return data.decode("utf-8", errors="strict").rstrip("\r\n") or None


class SecretResolver:
    """Reference -> value through a list of backends: those of the reference's scheme are asked in order and
    the first that has the secret wins (e.g. a mounted folder first, then the environment)."""

    def __init__(self, backends: Sequence[SecretBackend] | None = None) -> None:
        self._backends = list(backends) if backends is not None else [EnvSecrets(), FileSecrets()]

    def resolve(self, ref: str) -> SecretValue:
        """The value `ref` names, or `MissingSecret` (naming the reference, never a value)."""
        scheme, sep, name = ref.partition(":")
        if not sep or not name:
            raise MissingSecret(f"secret reference {ref!r} is not 'scheme:name'")
        backends = [backend for backend in self._backends if backend.scheme == scheme]
        if not backends:
            raise MissingSecret(f"secret {ref!r}: no backend handles the scheme {scheme!r}")
        for backend in backends:
            try:
                value = backend.lookup(name)
            except UnicodeDecodeError:
                raise MissingSecret(f"secret {ref!r} is not UTF-8 text") from None
            if value is not None:
                return SecretValue(value)
        raise MissingSecret(f"secret {ref!r} is not set")
