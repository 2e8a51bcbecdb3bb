"""The few vLLM OpenAI-compatible endpoints cda uses, with bounded time and retries only where safe.

Retries happen on connection errors and 5xx answers only (the request never reached a model, or the
server failed); a 4xx is the caller's fault and is returned at once. Every call is bounded in time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx

from inference.errors import InferenceUnavailable

RETRIES = 2
BACKOFF_S = 0.2


@dataclass(frozen=True)
class Completion:
    model: str
    text: str
    finish_reason: str
    completion_tokens: int


def completion_body(model: str, prompt: str, max_tokens: int, json_schema: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
    if json_schema is not None:
        body["structured_outputs"] = {"json": json_schema}
    return body


def parse_completion(answer: dict[str, Any]) -> Completion:
    choice = answer["choices"][0]
    usage = answer.get("usage") or {}
    return Completion(answer["model"], choice["text"], choice.get("finish_reason") or "", int(usage.get("completion_tokens", 0)))


def _unavailable(url: str, path: str, detail: object) -> InferenceUnavailable:
    return InferenceUnavailable(f"vLLM server at {url} failed {path}: {detail}")


class VllmApi:
    """Synchronous calls, for the adapter lifecycle and the supervisor."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(RETRIES + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:  # connect errors and timeouts
                error: object = exc
            else:
                if response.status_code < 500:
                    return response
                error = f"HTTP {response.status_code}: {response.text[:300]}"
            if attempt < RETRIES:
                time.sleep(BACKOFF_S * 2**attempt)
        raise _unavailable(self.url, path, error)

    def ready(self) -> bool:
        try:
            return self._http.get("/v1/models", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def models(self) -> dict[str, dict[str, Any]]:
        response = self.request("GET", "/v1/models")
        return {m["id"]: m for m in response.json()["data"]}

    def load_adapter(self, name: str, path: str, inplace: bool = False) -> httpx.Response:
        return self.request("POST", "/v1/load_lora_adapter",
                            json={"lora_name": name, "lora_path": path, "load_inplace": inplace})

    def unload_adapter(self, name: str) -> httpx.Response:
        return self.request("POST", "/v1/unload_lora_adapter", json={"lora_name": name})

    def complete(self, model: str, prompt: str, max_tokens: int = 16, json_schema: dict[str, Any] | None = None) -> Completion:
        response = self.request("POST", "/v1/completions", json=completion_body(model, prompt, max_tokens, json_schema))
        if response.status_code != 200:
            raise InferenceUnavailable(f"completion on {model} refused: HTTP {response.status_code}: {response.text[:300]}")
        return parse_completion(response.json())

    def close(self) -> None:
        self._http.close()


class AsyncVllmApi:
    """Asynchronous completions with a concurrency limit, for the gateway."""

    def __init__(self, url: str, timeout_s: float = 30.0, concurrency: int = 64) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout_s,
                                       limits=httpx.Limits(max_connections=concurrency))
        self._slots = asyncio.Semaphore(concurrency)

    async def complete(self, model: str, prompt: str, max_tokens: int, json_schema: dict[str, Any] | None) -> Completion:
        body = completion_body(model, prompt, max_tokens, json_schema)
        async with self._slots:
            for attempt in range(RETRIES + 1):
                try:
                    response = await self._http.post("/v1/completions", json=body)
                except httpx.TransportError as exc:
                    error: object = exc
                else:
                    if response.status_code == 200:
                        return parse_completion(response.json())
                    if response.status_code < 500:
                        raise InferenceUnavailable(f"completion on {model} refused: HTTP {response.status_code}: {response.text[:300]}")
                    error = f"HTTP {response.status_code}: {response.text[:300]}"
                if attempt < RETRIES:
                    await asyncio.sleep(BACKOFF_S * 2**attempt)
        raise _unavailable(self.url, "/v1/completions", error)

    async def ready(self) -> bool:
        try:
            return (await self._http.get("/v1/models", timeout=2)).status_code == 200
        except httpx.TransportError:
            return False

    async def close(self) -> None:
        await self._http.aclose()
