"""The adapter registry: content-addressed, versioned adapters with their metadata, per company.

Publishing writes into a hidden temporary folder and renames it into place, so a version is either
wholly visible or not at all. `activate` and `rollback` move a small pointer file the same way.
Local filesystem backend; the interface is what an S3-compatible backend would implement.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

TRAINER_VERSION = "1"


@dataclass(frozen=True)
class AdapterVersion:
    company_id: str
    version: str
    base_model: str
    rank: int
    dataset_hash: str
    request_id: str
    metrics: dict[str, float] = field(default_factory=dict)
    created_at: str = ""
    trainer_version: str = TRAINER_VERSION
    path: str = ""


class AdapterRegistry(Protocol):
    def publish(self, company_id: str, adapter_dir: Path, meta: dict[str, Any]) -> AdapterVersion: ...

    def list(self, company_id: str) -> list[AdapterVersion]: ...

    def get(self, company_id: str, version: str) -> AdapterVersion: ...

    def find_by_request(self, company_id: str, request_id: str) -> AdapterVersion | None: ...

    def active(self, company_id: str) -> AdapterVersion | None: ...

    def activate(self, company_id: str, version: str) -> AdapterVersion: ...

    def rollback(self, company_id: str) -> AdapterVersion: ...


def content_version(adapter_dir: Path) -> str:
    """The version id: a hash of the adapter's files (names and bytes)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in adapter_dir.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(adapter_dir)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(text)
    os.replace(tmp, path)


class LocalAdapterRegistry:
    """`<root>/<company>/<version>/` holds the adapter files and `cda_adapter.json`."""

    META = "cda_adapter.json"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _company(self, company_id: str) -> Path:
        return self.root / company_id

    def publish(self, company_id: str, adapter_dir: Path, meta: dict[str, Any]) -> AdapterVersion:
        version = content_version(adapter_dir)
        final = self._company(company_id) / version
        if final.exists():
            return self.get(company_id, version)
        staging = self._company(company_id) / f".staging-{uuid.uuid4().hex}"
        shutil.copytree(adapter_dir, staging)
        record = AdapterVersion(company_id=company_id, version=version, path=str(final),
                                created_at=datetime.now(timezone.utc).isoformat(), **meta)
        (staging / self.META).write_text(json.dumps(asdict(record), indent=2))
        try:
            os.rename(staging, final)  # atomic: the version appears whole or not at all
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not final.exists():
                raise
        return self.get(company_id, version)

    def list(self, company_id: str) -> list[AdapterVersion]:
        folder = self._company(company_id)
        if not folder.exists():
            return []
        found = [self._read(p) for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
        return sorted(found, key=lambda v: v.created_at)

    def get(self, company_id: str, version: str) -> AdapterVersion:
        path = self._company(company_id) / version
        if not (path / self.META).exists():
            raise KeyError(f"company {company_id} has no adapter version {version}")
        return self._read(path)

    def find_by_request(self, company_id: str, request_id: str) -> AdapterVersion | None:
        return next((v for v in self.list(company_id) if v.request_id == request_id), None)

    def active(self, company_id: str) -> AdapterVersion | None:
        history = self._history(company_id)
        return self.get(company_id, history[-1]) if history else None

    def activate(self, company_id: str, version: str) -> AdapterVersion:
        record = self.get(company_id, version)
        history = [v for v in self._history(company_id) if v != version] + [version]
        _write_atomically(self._company(company_id) / "ACTIVE.json", json.dumps(history))
        return record

    def rollback(self, company_id: str) -> AdapterVersion:
        history = self._history(company_id)
        if len(history) < 2:
            raise KeyError(f"company {company_id} has no earlier active adapter to roll back to")
        _write_atomically(self._company(company_id) / "ACTIVE.json", json.dumps(history[:-1]))
        return self.get(company_id, history[-2])

    def _history(self, company_id: str) -> list[str]:
        path = self._company(company_id) / "ACTIVE.json"
        return json.loads(path.read_text()) if path.exists() else []

    def _read(self, path: Path) -> AdapterVersion:
        return AdapterVersion(**json.loads((path / self.META).read_text()))
