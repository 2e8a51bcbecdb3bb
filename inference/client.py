"""The async client every cda component uses to ask the model for a company: through the gateway, with
at most `CDA_INFERENCE_CONCURRENCY` requests in flight, and one total deadline (`CDA_INFERENCE_TIMEOUT_S`)
that bounds everything: waiting for a slot, every attempt and every pause between them.

The client owns the retries of a generation (the gateway re-sends only requests that never reached vLLM):
connection errors, 429 and 5xx are tried again within the deadline; a generation whose answer timed out
is not re-sent, since it may still be running.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from core.retry import RetryableStatus, RetryPolicy, http_transient, raise_for_retry
from core.settings import Settings
from inference.completion import CompletionPublic
from inference.errors import InferenceError, InferenceUnavailable

ATTEMPTS = 3


class InferenceClient:
    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None,
                 attempts: int = ATTEMPTS) -> None:
        self.url = settings.inference_url.rstrip("/")
        self.deadline_s = settings.inference_timeout_s
        self.attempts = attempts
        self._http = httpx.AsyncClient(base_url=self.url, timeout=self.deadline_s, transport=transport)
        self._slots = asyncio.Semaphore(settings.inference_concurrency)

    async def complete(self, company_id: str, prompt: str, max_tokens: int = 128,
                       json_schema: dict[str, Any] | None = None, use_adapter: bool = True) -> CompletionPublic:
        """A completion for `company_id` with its active adapter (or the base model when `use_adapter` is false);
        with `json_schema`, a validated tool call."""
        body = {"company_id": company_id, "prompt": prompt, "max_tokens": max_tokens, "json_schema": json_schema,
                "use_adapter": use_adapter}
        return CompletionPublic.model_validate(await self._post("/v1/complete", body))

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + self.deadline_s
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout=self.deadline_s)
        except TimeoutError:
            raise InferenceUnavailable(f"inference at {self.url}: no free slot within {self.deadline_s:.1f}s") from None
        try:
            policy = RetryPolicy(attempts=self.attempts, deadline_s=max(deadline - time.monotonic(), 0.001))

            async def attempt(remaining_s: float) -> httpx.Response:
                return raise_for_retry(await self._http.post(path, json=body, timeout=remaining_s))

            response = await policy.call_async(attempt, retry_if=http_transient(resend_after_read_timeout=False))
        except RetryableStatus as exc:
            raise InferenceUnavailable(f"inference at {self.url} unavailable: {exc}") from exc
        except (httpx.ReadTimeout, httpx.WriteTimeout) as exc:
            raise InferenceUnavailable(f"inference at {self.url} did not answer within the bound of "
                                       f"{self.deadline_s:.1f}s ({type(exc).__name__}); not re-sent") from exc
        except httpx.TransportError as exc:
            raise InferenceUnavailable(f"inference at {self.url} unavailable: {type(exc).__name__}: {exc}") from exc
        finally:
            self._slots.release()
        if response.status_code != 200:
            raise InferenceError(f"inference gateway refused the request: HTTP {response.status_code}: "
                                 f"{response.text[:500]}")
        return response.json()

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> InferenceClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()
