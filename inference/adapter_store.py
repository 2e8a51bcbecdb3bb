"""Where adapters travel through when the trainer and inference share no disk: a content-addressed store.

An adapter version is packed into one archive (`core.adapter_archive`) whose sha256 names it. The trainer puts
it into the store and announces its URI (`<registry>/v1/adapters/<sha256>`, `s3://bucket/prefix/<sha256>`) on
`lora_adapter_ready`; inference takes only URIs of the store it is configured with, downloads the version it does not have, checks the hash
and unpacks it under its own home (`materialize`). A hash that does not match is a refusal, never a load.
Backends sit behind `AdapterStore`, chosen from `BACKENDS` by the settings: the HTTP adapter registry
(`adapter_store_http`, served by `cda inference registry`) and an S3-compatible bucket (`adapter_store_s3`).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from core.adapter_archive import ArchiveError, pack, unpack
from core.paths import UnsafePath, safe_join
from core.settings import Settings
from inference.adapter_store_http import HttpAdapterStore
from inference.adapter_store_s3 import S3AdapterStore
from inference.errors import AdapterInvalid, InferenceUnavailable


class AdapterStore(Protocol):
    base_url: str

    def names(self, uri: str) -> str | None:
        """The sha256 `uri` names when it is one of this store's, else None."""
        ...

    def put(self, data: bytes) -> str:
        """Store an archive; its URI (which names its sha256)."""
        ...

    def get(self, uri: str) -> bytes:
        """The archive `uri` names, checked against its hash."""
        ...


def _registry(settings: Settings) -> AdapterStore | None:
    return HttpAdapterStore.from_settings(settings) if settings.adapter_registry_url else None


def _s3(settings: Settings) -> AdapterStore | None:
    return S3AdapterStore.from_settings(settings) if settings.adapter_s3_url else None


# the backends, first configured wins (settings refuse more than one)
BACKENDS: tuple[Callable[[Settings], AdapterStore | None], ...] = (_registry, _s3)


def configured(settings: Settings) -> bool:
    """Whether adapters travel through a store (else inference reads the trainer's folders: a shared disk)."""
    return bool(settings.adapter_registry_url or settings.adapter_s3_url)


def store_for(settings: Settings) -> AdapterStore:
    for backend in BACKENDS:
        store = backend(settings)
        if store is not None:
            return store
    raise InferenceUnavailable("no adapter store is configured (CDA_ADAPTER_REGISTRY_URL or CDA_ADAPTER_S3_URL)")


def publish(settings: Settings, folder: Path) -> str:
    """The trainer's side: `folder` packed into the configured store; the URI to announce."""
    return store_for(settings).put(pack(folder))


def materialize(settings: Settings, company_id: str, uri: str, into: Path) -> Path:
    """Inference's side: the adapter `uri` names, as a folder under `into` (the company's registry folder),
    downloaded once, its hash checked, unpacked whole or not at all."""
    store = store_for(settings)
    sha = store.names(uri)
    if sha is None:
        raise AdapterInvalid("foreign_uri", f"{uri!r} is not an adapter of the configured store {store.base_url}")
    try:
        final = safe_join(into, f"sha256-{sha[:32]}")
    except UnsafePath as exc:
        raise AdapterInvalid("foreign_uri", str(exc)) from None
    if final.is_dir():
        return final
    data = store.get(uri)
    staging = final.with_name(f".download-{uuid.uuid4().hex}")
    try:
        unpack(data, staging)
        staging.rename(final)
    except ArchiveError as exc:
        raise AdapterInvalid("bad_archive", f"adapter {sha}: {exc}") from None
    except OSError:
        if not final.is_dir():  # another download of the same version won the rename: use it
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
