"""The two schema-registry calls the Confluent framing needs, on confluent-kafka's `SchemaRegistryClient`,
with a bounded time per call and failures sorted by who is at fault.

- The registry is at fault (unreachable, timing out, 5xx/408/429, refusing our credentials, answering
  nonsense): `RegistryUnavailable`, a `TransientError` — a consumer retries the record and never
  dead-letters it for this.
- The record is at fault (its schema id is unknown): `SerializationError`, deterministic.
- The writer is at fault (the registry refuses the schema as incompatible or invalid): `SerializationError`.

Retries follow the one policy of cda (`core.retry.RetryPolicy`, total deadline); the library's own
retries are switched off so the bound holds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from core.retry import RetryPolicy
from topics.errors import RegistryUnavailable, SerializationError

try:  # the HTTP library the registry client runs on: httpx2 where installed, else httpx
    from confluent_kafka.schema_registry.common._httpx_compat import httpx as _registry_http
except ImportError:  # pragma: no cover - older confluent-kafka
    _registry_http = httpx

T = TypeVar("T")
_NOT_FOUND = 404  # 40401 subject, 40402 version, 40403 schema not found
_WRITER_AT_FAULT = frozenset({409, 422})  # incompatible with the subject's history, invalid schema


class RegistryClient:
    """Registers schemas under a subject and fetches them by id; the serde caches the answers."""

    def __init__(self, url: str, timeout_s: float = 5.0, retry: RetryPolicy | None = None) -> None:
        self.url = url.rstrip("/")
        self._client = SchemaRegistryClient({"url": self.url, "timeout": timeout_s, "max.retries": 0})
        self._retry = retry or RetryPolicy(attempts=3, deadline_s=timeout_s, backoff_s=0.1, max_backoff_s=1.0)

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        """Register `schema` under `subject` (idempotent on the registry's side); return its id."""
        text = json.dumps(schema, separators=(",", ":"))
        return self._call(f"registering {subject}", lambda: self._client.register_schema(subject, Schema(text, "AVRO")))

    def schema(self, schema_id: int) -> dict[str, Any]:
        """The schema registered with `schema_id`."""
        found = self._call(f"schema id {schema_id}", lambda: self._client.get_schema(schema_id))
        try:
            return json.loads(found.schema_str or "")  # type: ignore[no-any-return]
        except ValueError as exc:
            raise SerializationError(f"schema id {schema_id} at {self.url} is no JSON schema: {exc}") from exc

    def close(self) -> None:
        self._client.close()

    def _call(self, what: str, request: Callable[[], T]) -> T:
        def attempt(_remaining_s: float) -> T:
            try:
                return request()
            except SchemaRegistryError as exc:
                status = exc.http_status_code
                if status == _NOT_FOUND:
                    raise SerializationError(f"{what}: unknown to the schema registry at {self.url} ({exc})") from exc
                if status in _WRITER_AT_FAULT:
                    raise SerializationError(f"{what}: refused by the schema registry at {self.url} ({exc})") from exc
                raise RegistryUnavailable(f"{what}: the schema registry at {self.url} answered {exc}") from exc
            except (_registry_http.HTTPError, httpx.HTTPError, ValueError, OSError) as exc:  # unreachable, timed out, or no JSON answer
                raise RegistryUnavailable(f"{what}: the schema registry at {self.url} is unavailable: {exc!r}") from exc

        return self._retry.call(attempt)
