"""Where adapters travel through when the trainer and inference share no disk: a content-addressed store.

An adapter version is packed into one archive (`core.adapter_archive`) whose sha256 names it. The trainer puts
it into the store and announces its URI (`<registry>/v1/adapters/<sha256>`) on `lora_adapter_ready`; inference
takes only URIs of the registry it is configured with, downloads the version it does not have, checks the hash
and unpacks it under its own home (`materialize`). A hash that does not match is a refusal, never a load.
Backends sit behind `AdapterStore`: the HTTP adapter registry (`cda inference registry`, `inference/registry_app.py`)
here; an S3-compatible one would implement the same two calls.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Protocol

import httpx

from core.adapter_archive import SHA256, ArchiveError, digest, pack, unpack
from core.paths import UnsafePath, safe_join
from core.settings import Settings
from inference.errors import AdapterInvalid, InferenceUnavailable

PATH = "/v1/adapters/"


class AdapterStore(Protocol):
    def put(self, data: bytes) -> str:
        """Store an archive; its URI (which names its sha256)."""
        ...

    def get(self, uri: str) -> bytes:
        """The archive `uri` names, checked against its hash."""
        ...


class HttpAdapterStore:
    """The HTTP adapter registry: PUT and GET of `/v1/adapters/<sha256>`, with a bearer token when one is set."""

    def __init__(self, base_url: str, token: str | None = None, timeout_s: float = 60.0,
                 max_bytes: int = 1 << 30, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = timeout_s
        self._max_bytes = max_bytes
        self._transport = transport

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpAdapterStore:
        if not settings.adapter_registry_url:
            raise InferenceUnavailable("no adapter registry is configured (CDA_ADAPTER_REGISTRY_URL)")
        token = settings.adapter_registry_token.get_secret_value() if settings.adapter_registry_token else None
        return cls(settings.adapter_registry_url, token, settings.adapter_registry_timeout_s)

    def uri_of(self, sha: str) -> str:
        return f"{self.base_url}{PATH}{sha}"

    def names(self, uri: str) -> str | None:
        """The sha256 `uri` names when it is one of this registry's, else None."""
        if not uri.startswith(self.base_url + PATH):
            return None
        sha = uri[len(self.base_url + PATH):]
        return sha if SHA256.match(sha) else None

    def put(self, data: bytes) -> str:
        sha = digest(data)
        with self._client() as client:
            try:
                answer = client.put(self.uri_of(sha), content=data, headers=self._headers)
            except httpx.HTTPError as exc:
                raise InferenceUnavailable(f"the adapter registry at {self.base_url} did not take {sha}: {exc}") from exc
        if answer.status_code not in (200, 201):
            raise InferenceUnavailable(f"the adapter registry at {self.base_url} answered {answer.status_code} "
                                       f"for {sha}: {answer.text[:200]}")
        return self.uri_of(sha)

    def get(self, uri: str) -> bytes:
        sha = self.names(uri)
        if sha is None:
            raise AdapterInvalid("foreign_uri", f"{uri!r} is not an adapter of the registry {self.base_url}")
        with self._client() as client:
            try:
                with client.stream("GET", uri, headers=self._headers) as answer:
                    if answer.status_code == 404:
                        raise AdapterInvalid("missing", f"the registry at {self.base_url} has no adapter {sha}")
                    if answer.status_code != 200:
                        raise InferenceUnavailable(f"the adapter registry answered {answer.status_code} for {sha}")
                    data = bytearray()
                    for chunk in answer.iter_bytes():
                        data += chunk
                        if len(data) > self._max_bytes:
                            raise AdapterInvalid("too_large", f"adapter {sha} is larger than {self._max_bytes} bytes")
            except httpx.HTTPError as exc:
                raise InferenceUnavailable(f"the adapter registry at {self.base_url} is unreachable: {exc}") from exc
        if digest(bytes(data)) != sha:
            raise AdapterInvalid("hash_mismatch", f"the archive served as {sha} hashes to {digest(bytes(data))}")
        return bytes(data)

    def _client(self) -> httpx.Client:
        return httpx.Client(timeout=self._timeout, transport=self._transport, trust_env=False, follow_redirects=False)


def publish(settings: Settings, folder: Path) -> str:
    """The trainer's side: `folder` packed into the configured registry; the URI to announce."""
    return HttpAdapterStore.from_settings(settings).put(pack(folder))


def materialize(settings: Settings, company_id: str, uri: str, into: Path) -> Path:
    """Inference's side: the adapter `uri` names, as a folder under `into` (the company's registry folder),
    downloaded once, its hash checked, unpacked whole or not at all."""
    store = HttpAdapterStore.from_settings(settings)
    sha = store.names(uri)
    if sha is None:
        raise AdapterInvalid("foreign_uri", f"{uri!r} is not an adapter of the configured registry "
                             f"{settings.adapter_registry_url}")
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
