"""The HTTP adapter registry as an adapter store (`cda inference registry`, `inference/registry_app.py`):
PUT and GET of `/v1/adapters/<sha256>`, with a bearer token when one is set."""

from __future__ import annotations

import httpx

from core.adapter_archive import SHA256, digest
from core.settings import Settings
from inference.errors import AdapterInvalid, InferenceUnavailable

PATH = "/v1/adapters/"


class HttpAdapterStore:
    """The registry's two calls; a download is checked against the hash its URI names."""

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
