"""The adapter registry: content-addressed, versioned adapters with their metadata, per company.

Publishing writes into a hidden temporary folder, flushes it to disk and renames it into place, so a
version is either wholly visible or not at all, also after a crash. The registry stores versions; it does
not say which one is active: that is what the inference lifecycle announces (`adapter_activated` on the
compacted `company_adapters` topic), and a rollback is a new `lora_adapter_ready` for a stored version.
Every path is built with `safe_join`, so no company or version id can point outside the registry.
Local filesystem backend; the interface is what an S3-compatible backend would implement.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from core.identifiers import is_identifier
from core.paths import safe_join
from trainer.durable import fsync_path, fsync_tree
from trainer.errors import TrainerError

TRAINER_VERSION = "1"


class UnknownVersion(TrainerError, LookupError):
    """The registry holds no such version for the company."""


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
    baseline: str = ""  # what the candidate was compared with: a served version, or the base model's name
    prompt_version: int = 1  # the prompt format it was trained for (`core.prompts.PROMPT_VERSION`); older records: 1


class AdapterRegistry(Protocol):
    def publish(self, company_id: str, adapter_dir: Path, meta: dict[str, Any]) -> AdapterVersion: ...

    def list(self, company_id: str) -> list[AdapterVersion]: ...

    def get(self, company_id: str, version: str) -> AdapterVersion: ...

    def find_by_request(self, company_id: str, request_id: str) -> AdapterVersion | None: ...


def content_version(adapter_dir: Path) -> str:
    """The version id: a hash of the adapter's files (names and bytes)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in adapter_dir.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(adapter_dir)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class LocalAdapterRegistry:
    """`<root>/<company>/<version>/` holds the adapter files and `cda_adapter.json`."""

    META = "cda_adapter.json"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _company(self, company_id: str) -> Path:
        return safe_join(self.root, company_id)

    def _version(self, company_id: str, version: str) -> Path:
        return safe_join(self.root, company_id, version)

    def publish(self, company_id: str, adapter_dir: Path, meta: dict[str, Any]) -> AdapterVersion:
        version = content_version(adapter_dir)
        final = self._version(company_id, version)
        if (final / self.META).exists():
            return self.get(company_id, version)
        staging = final.with_name(f".staging-{uuid.uuid4().hex}")
        shutil.copytree(adapter_dir, staging)
        record = AdapterVersion(company_id=company_id, version=version, path=str(final),
                                created_at=datetime.now(UTC).isoformat(), **meta)
        (staging / self.META).write_text(json.dumps(asdict(record), indent=2))
        fsync_tree(staging)  # on disk before the name is: a crash never leaves a visible, empty version
        try:
            staging.rename(final)  # atomic: the version appears whole or not at all
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not final.exists():
                raise
        fsync_path(final.parent)
        return self.get(company_id, version)

    def list(self, company_id: str) -> list[AdapterVersion]:
        folder = self._company(company_id)
        if not folder.exists():
            return []
        found = [self._read(p) for p in folder.iterdir()
                 if p.is_dir() and is_identifier(p.name) and (p / self.META).exists()]
        return sorted(found, key=lambda v: v.created_at)

    def get(self, company_id: str, version: str) -> AdapterVersion:
        path = self._version(company_id, version)
        if not (path / self.META).exists():
            raise UnknownVersion(f"company {company_id} has no adapter version {version} in {self.root}")
        return self._read(path)

    def find_by_request(self, company_id: str, request_id: str) -> AdapterVersion | None:
        return next((v for v in self.list(company_id) if v.request_id == request_id), None)

    def _read(self, path: Path) -> AdapterVersion:
        return AdapterVersion(**json.loads((path / self.META).read_text()))
