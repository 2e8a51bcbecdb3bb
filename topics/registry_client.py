"""A small client of the Confluent schema registry REST API, used only when a registry is configured."""

from __future__ import annotations

import json
from typing import Any

import httpx

from topics.errors import SerializationError

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryClient:
    """Registers schemas and fetches them by id; answers are cached by the serde, not here."""

    def __init__(self, url: str, timeout_s: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, transport=transport,
                                  headers={"Content-Type": _CONTENT_TYPE, "Accept": _CONTENT_TYPE})

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        """Register `schema` under `subject` (idempotent on the registry's side); return its id."""
        body = {"schema": json.dumps(schema, separators=(",", ":"))}
        answer = self._call("POST", f"/subjects/{subject}/versions", json=body)
        return int(answer["id"])

    def schema(self, schema_id: int) -> dict[str, Any]:
        """The schema registered with `schema_id`."""
        answer = self._call("GET", f"/schemas/ids/{schema_id}")
        return json.loads(answer["schema"])

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise SerializationError(f"schema registry {self.url} unreachable: {exc}") from exc
        if response.status_code >= 400:
            raise SerializationError(f"schema registry {self.url}{path} answered {response.status_code}: {response.text}")
        return response.json()
