"""Where a company's API key is kept on this machine after the demo created it: `<home>/keys/<company>.key`,
mode 0600, so a second run and `cda dashboard` reuse it. The key is a secret: it goes to this file and to the
`Authorization` header, never to an event, a log or ClickHouse (the log holds its salted hash only)."""

from __future__ import annotations

import os
from pathlib import Path

from core.paths import safe_join
from core.settings import Settings


def key_path(settings: Settings, company: str) -> Path:
    return safe_join(settings.home / "keys", f"{company}.key")


def read_key(settings: Settings, company: str) -> str | None:
    try:
        return key_path(settings, company).read_text().strip() or None
    except FileNotFoundError:
        return None


def save_key(settings: Settings, company: str, key: str) -> Path:
    path = key_path(settings, company)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    os.replace(tmp, path)
    return path
