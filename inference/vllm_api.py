"""The few vLLM OpenAI-compatible endpoints cda uses, each bounded by one total deadline (`core.retry`).

Adapter loads, unloads and listings are safe to send twice (loads are always in place), so they are
retried on connection errors, timeouts and 429/5xx. A generation is not: one that timed out while being
read may still be running, so it is never re-sent after a read timeout. The gateway's generations are
retried only when the request never reached the server (a refused or timed-out connection): the client
in front of the gateway owns the retries, so the two layers do not multiply them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

from core.retry import RetryableStatus, RetryPolicy, http_transient, raise_for_retry
from inference.errors import AdapterInvalid, CompletionRefused, InferenceUnavailable

ATTEMPTS = 3
READY_TIMEOUT_S = 2.0


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


def never_reached(exc: BaseException) -> bool:
    """The request never reached the server (nothing can be running there): safe to send again."""
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))


def completion_of(url: str, model: str, response: httpx.Response) -> Completion:
    """The completion in `response`; a 5xx or an unknown model (404: not registered yet, e.g. right after a
    restart) is `InferenceUnavailable`, any other client error `CompletionRefused`."""
    if response.status_code == 200:
        return parse_completion(response.json())
    detail = f"completion on {model} at {url} failed: HTTP {response.status_code}: {response.text[:300]}"
    if response.status_code >= 500 or response.status_code in (404, 429):
        raise InferenceUnavailable(detail)
    raise CompletionRefused(response.status_code, detail)


def _unavailable(url: str, path: str, exc: BaseException) -> InferenceUnavailable:
    if isinstance(exc, httpx.TimeoutException):
        detail = f"timed out ({type(exc).__name__})"
    else:
        detail = f"{type(exc).__name__}: {exc}"
    return InferenceUnavailable(f"vLLM server at {url} failed {path}: {detail}")


class VllmApi:
    """Synchronous calls, for the adapter lifecycle, the supervisor and the trainer."""

    def __init__(self, url: str, timeout_s: float = 30.0, *, attempts: int = ATTEMPTS,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.policy = RetryPolicy(attempts=attempts, deadline_s=timeout_s)
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, transport=transport)

    def request(self, method: str, path: str, *, resend_after_read_timeout: bool = True, **kwargs: Any) -> httpx.Response:
        """The server's answer (a 5xx too, once the retries are spent); `InferenceUnavailable` when none came."""
        def attempt(remaining_s: float) -> httpx.Response:
            return raise_for_retry(self._http.request(method, path, timeout=remaining_s, **kwargs))

        try:
            return self.policy.call(attempt, retry_if=http_transient(resend_after_read_timeout))
        except RetryableStatus as exc:
            return exc.response
        except httpx.TransportError as exc:
            raise _unavailable(self.url, path, exc) from exc

    def ready(self) -> bool:
        """Through this client's own transport and pool (`core.health` is for plain URLs)."""
        try:
            return self._http.get("/v1/models", timeout=READY_TIMEOUT_S).status_code == 200
        except httpx.TransportError:
            return False

    def models(self) -> dict[str, dict[str, Any]]:
        response = self.request("GET", "/v1/models")
        if response.status_code != 200:
            raise InferenceUnavailable(f"vLLM server at {self.url} failed /v1/models: HTTP {response.status_code}")
        return {m["id"]: m for m in response.json()["data"]}

    def load_adapter(self, name: str, path: str, inplace: bool = True) -> httpx.Response:
        """Load (or replace) adapter `name`. In place by default: a repeated load of a name that a retried or
        interrupted earlier load left behind must succeed, never answer "already loaded"."""
        return self.request("POST", "/v1/load_lora_adapter",
                            json={"lora_name": name, "lora_path": path, "load_inplace": inplace})

    def load_or_refuse(self, name: str, path: str) -> None:
        """Load `name` in place, or raise: a refusal is the adapter's fault (`AdapterInvalid("load_failed")`)
        only while the server otherwise answers; else it is an outage (`InferenceUnavailable`)."""
        response = self.load_adapter(name, path, inplace=True)
        if response.status_code == 200:
            return
        if response.status_code >= 500 and not self.ready():
            raise InferenceUnavailable(f"vLLM failed while loading {name}: HTTP {response.status_code}")
        raise AdapterInvalid("load_failed", f"vLLM refused {path}: HTTP {response.status_code}: {response.text[:300]}")

    def unload_adapter(self, name: str) -> httpx.Response:
        return self.request("POST", "/v1/unload_lora_adapter", json={"lora_name": name})

    def complete(self, model: str, prompt: str, max_tokens: int = 16, json_schema: dict[str, Any] | None = None) -> Completion:
        response = self.request("POST", "/v1/completions", resend_after_read_timeout=False,
                                json=completion_body(model, prompt, max_tokens, json_schema))
        return completion_of(self.url, model, response)

    def close(self) -> None:
        self._http.close()


class AsyncVllmApi:
    """Asynchronous completions with a concurrency limit, for the gateway and the trainer's gate.

    `idempotent=True` (the gate: asking twice executes nothing) also re-sends after read timeouts and 429/5xx
    answers, within the same policy; the gateway's generations are re-sent only when they never reached vLLM."""

    def __init__(self, url: str, timeout_s: float = 30.0, concurrency: int = 64, *, attempts: int = ATTEMPTS,
                 transport: httpx.AsyncBaseTransport | None = None, policy: RetryPolicy | None = None,
                 idempotent: bool = False) -> None:
        self.url = url.rstrip("/")
        self.policy = policy or RetryPolicy(attempts=attempts, deadline_s=timeout_s)
        self.idempotent = idempotent
        self._http = httpx.AsyncClient(base_url=self.url, timeout=self.policy.deadline_s, transport=transport,
                                       limits=httpx.Limits(max_connections=concurrency))
        self._slots = asyncio.Semaphore(concurrency)

    async def complete(self, model: str, prompt: str, max_tokens: int, json_schema: dict[str, Any] | None) -> Completion:
        """One generation; `InferenceUnavailable` when vLLM is down, overloaded or does not know `model`."""
        body = completion_body(model, prompt, max_tokens, json_schema)

        async def attempt(remaining_s: float) -> httpx.Response:
            response = await self._http.post("/v1/completions", json=body, timeout=remaining_s)
            return raise_for_retry(response) if self.idempotent else response

        retry_if = http_transient(resend_after_read_timeout=True) if self.idempotent else never_reached
        async with self._slots:
            try:
                response = await self.policy.call_async(attempt, retry_if=retry_if)
            except RetryableStatus as exc:  # still 429/5xx when the policy was spent
                response = exc.response
            except httpx.TransportError as exc:
                raise _unavailable(self.url, "/v1/completions", exc) from exc
        return completion_of(self.url, model, response)

    async def models(self) -> set[str] | None:
        """The names the server serves now (base and adapters), or None when it does not answer."""
        try:
            response = await self._http.get("/v1/models", timeout=READY_TIMEOUT_S)
        except httpx.TransportError:
            return None
        if response.status_code != 200:
            return None
        return {m["id"] for m in response.json().get("data", [])}

    async def ready(self) -> bool:
        return await self.models() is not None

    async def close(self) -> None:
        await self._http.aclose()
