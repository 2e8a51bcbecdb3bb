"""One retry policy with one total deadline for every inference HTTP call: counted on mock transports.

The client owns the retries of a generation; the gateway re-sends one only when it never reached vLLM;
a generation whose answer timed out is never re-sent. So one client call costs at most `attempts`
generations (before: the client's 3 times the gateway's 3 = 9, up to ~91 s against the documented 30 s).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from core.settings import Settings
from inference.client import InferenceClient
from inference.errors import CompletionRefused, InferenceError, InferenceUnavailable
from inference.gateway import GatewayState, create_app
from inference.routing import AdapterRouter
from inference.vllm_api import AsyncVllmApi, VllmApi

COMPLETION = {"model": "base", "choices": [{"text": "ok", "finish_reason": "stop"}], "usage": {"completion_tokens": 1}}


class Counting:
    """A mock server: answers each request with `reply(request)` and records every request (and its timeout)."""

    def __init__(self, reply: Callable[[httpx.Request], httpx.Response]) -> None:
        self.reply = reply
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.reply(request)

    def on(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == path]

    def read_timeouts(self) -> list[float]:
        return [float(r.extensions["timeout"]["read"]) for r in self.requests]

    def sync(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def async_(self) -> httpx.MockTransport:
        async def handle(request: httpx.Request) -> httpx.Response:
            return self(request)
        return httpx.MockTransport(handle)


def status(code: int, body: Any = None) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(code, json=body if body is not None else {"error": "x"})


def raising(exc: type[httpx.TransportError]) -> Callable[[httpx.Request], httpx.Response]:
    def reply(request: httpx.Request) -> httpx.Response:
        raise exc("simulated", request=request)
    return reply


def settings(timeout_s: float = 30.0) -> Settings:
    return Settings(inference_url="http://gateway", inference_timeout_s=timeout_s)


# -- the synchronous vLLM API (lifecycle, supervisor, trainer) ---------------------------------------

def test_sync_api_retries_listings_within_the_deadline_and_never_resends_a_timed_out_generation() -> None:
    down = Counting(status(503))
    api = VllmApi("http://vllm", timeout_s=5, transport=down.sync())
    with pytest.raises(InferenceUnavailable, match="/v1/models"):
        api.models()
    assert len(down.on("/v1/models")) == 3
    assert all(0 < t <= 5 for t in down.read_timeouts())  # each attempt gets what is left of the 5 s, no more

    slow = Counting(raising(httpx.ReadTimeout))
    api = VllmApi("http://vllm", timeout_s=5, transport=slow.sync())
    with pytest.raises(InferenceUnavailable, match="timed out"):
        api.complete("acme@lora", "hi")
    assert len(slow.on("/v1/completions")) == 1  # it may still be running: not sent again

    refusing = Counting(status(400))
    api = VllmApi("http://vllm", timeout_s=5, transport=refusing.sync())
    with pytest.raises(CompletionRefused):
        api.complete("acme@lora", "x" * 10)
    assert len(refusing.requests) == 1  # the caller's fault: once


def test_sync_api_returns_a_load_refusal_to_the_lifecycle_after_the_retries() -> None:
    refusing = Counting(status(500))
    api = VllmApi("http://vllm", timeout_s=5, transport=refusing.sync())
    assert api.load_adapter("acme@lora", "/adapters/acme/v1").status_code == 500
    assert len(refusing.requests) == 3 and all(r.read() for r in refusing.requests)
    assert b'"load_inplace":true' in refusing.requests[0].read().replace(b" ", b"")  # in place by default


# -- the gateway's vLLM API --------------------------------------------------------------------------

def test_gateway_api_resends_a_generation_only_when_it_never_reached_vllm() -> None:
    async def run(reply: Callable[[httpx.Request], httpx.Response]) -> tuple[Counting, BaseException | None]:
        counting = Counting(reply)
        api = AsyncVllmApi("http://vllm", timeout_s=5, transport=counting.async_())
        try:
            await api.complete("base", "hi", 4, None)
            error = None
        except InferenceError as exc:
            error = exc
        await api.close()
        return counting, error

    for reply, attempts in ((raising(httpx.ConnectError), 3), (status(503), 1), (raising(httpx.ReadTimeout), 1)):
        counting, error = asyncio.run(run(reply))
        assert isinstance(error, InferenceUnavailable) and len(counting.requests) == attempts, (reply, error)
    counting, error = asyncio.run(run(status(400)))
    assert isinstance(error, CompletionRefused) and len(counting.requests) == 1


# -- the client --------------------------------------------------------------------------------------

def _client_call(transport: httpx.AsyncBaseTransport, config: Settings, attempts: int = 3) -> BaseException | None:
    async def call() -> BaseException | None:
        async with InferenceClient(config, transport=transport, attempts=attempts) as client:
            try:
                await client.complete("acme", "hi", max_tokens=4)
            except InferenceError as exc:
                return exc
        return None
    return asyncio.run(call())


def test_client_retries_unavailability_not_timed_out_generations_and_not_refusals() -> None:
    for reply, attempts, error in ((status(503), 3, InferenceUnavailable), (raising(httpx.ConnectError), 3, InferenceUnavailable),
                                   (raising(httpx.ReadTimeout), 1, InferenceUnavailable), (status(422), 1, InferenceError)):
        counting = Counting(reply)
        raised = _client_call(counting.async_(), settings(timeout_s=5))
        assert type(raised) is error and len(counting.requests) == attempts, (reply, raised)
        assert all(0 < t <= 5 for t in counting.read_timeouts())


def test_the_client_deadline_ends_the_retries_not_the_attempt_count() -> None:
    counting = Counting(status(503))
    raised = _client_call(counting.async_(), settings(timeout_s=0.6), attempts=1000)
    assert isinstance(raised, InferenceUnavailable)
    assert 1 < len(counting.requests) < 1000  # backoff from 0.2 s: the 0.6 s deadline stops it after a few
    timeouts = counting.read_timeouts()
    assert timeouts == sorted(timeouts, reverse=True) and timeouts[0] <= 0.6  # each attempt: what is left


def test_client_and_gateway_together_cost_at_most_three_generations() -> None:
    """Client -> gateway -> vLLM that fails every generation: vLLM sees 3 generations, not 3 x 3."""
    vllm = Counting(status(500))

    async def call() -> BaseException | None:
        state = GatewayState(AdapterRouter(), AsyncVllmApi("http://vllm", timeout_s=5, transport=vllm.async_()), "base")
        gateway = httpx.ASGITransport(app=create_app(state))
        async with InferenceClient(settings(timeout_s=5), transport=gateway) as client:
            try:
                await client.complete("acme", "hi", max_tokens=4)
            except InferenceError as exc:
                return exc
            finally:
                await state.api.close()
        return None

    raised = asyncio.run(call())
    assert isinstance(raised, InferenceUnavailable)
    assert len(vllm.on("/v1/completions")) == 3

    vllm = Counting(lambda request: httpx.Response(200, json=COMPLETION))
    assert asyncio.run(call()) is None and len(vllm.on("/v1/completions")) == 1
