"""The async client every cda component uses to ask the model for a company: through the gateway,
bounded in time, retrying only connection errors and 5xx, with a limit on requests in flight."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

from cda.settings import Settings
from inference.errors import InferenceError, InferenceUnavailable

RETRIES = 2
BACKOFF_S = 0.25


@dataclass(frozen=True)
class CompletionResult:
    company_id: str
    model: str
    adapter_version: str | None
    used_base: bool
    text: str
    finish_reason: str
    latency_ms: float
    tool_call_valid: bool | None = None
    arguments: dict[str, Any] | None = None
    tool_call_error: str | None = None


class InferenceClient:
    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = settings.inference_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, timeout=settings.inference_timeout_s, transport=transport)
        self._slots = asyncio.Semaphore(settings.inference_concurrency)

    async def complete(self, company_id: str, prompt: str, max_tokens: int = 128,
                       json_schema: dict[str, Any] | None = None) -> CompletionResult:
        """A completion for `company_id` with its active adapter; with `json_schema`, a validated tool call."""
        body = {"company_id": company_id, "prompt": prompt, "max_tokens": max_tokens, "json_schema": json_schema}
        answer = await self._post("/v1/complete", body)
        tool = answer.get("tool_call") or {}
        return CompletionResult(
            company_id=answer["company_id"], model=answer["model"], adapter_version=answer["adapter_version"],
            used_base=answer["used_base"], text=answer["text"], finish_reason=answer["finish_reason"],
            latency_ms=answer["latency_ms"], tool_call_valid=tool.get("valid"), arguments=tool.get("arguments"),
            tool_call_error=tool.get("error"),
        )

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self._slots:
            for attempt in range(RETRIES + 1):
                try:
                    response = await self._http.post(path, json=body)
                except httpx.TransportError as exc:
                    error: object = f"{type(exc).__name__}: {exc}"
                else:
                    if response.status_code == 200:
                        return response.json()
                    if response.status_code < 500:
                        raise InferenceError(f"inference gateway refused the request: HTTP {response.status_code}: "
                                             f"{response.text[:500]}")
                    error = f"HTTP {response.status_code}: {response.text[:300]}"
                if attempt < RETRIES:
                    await asyncio.sleep(BACKOFF_S * 2**attempt)
        raise InferenceUnavailable(f"inference at {self.url} unavailable: {error}")

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> InferenceClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()
