"""Several vLLM servers behind one gateway, without servers: rendezvous routing, failover to the next server
with the company's adapter loaded there first, and a restarted server noticed by its listing."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import httpx
import pytest

from core.settings import Settings
from inference.backends import Backend, Backends
from inference.errors import InferenceUnavailable
from inference.gateway import GatewayState
from inference.lifecycle import AdapterManager
from inference.routing import ActiveAdapter, AdapterRouter, served_name
from inference.vllm_api import AsyncVllmApi, VllmApi
from tests.helpers import fake_adapter

COMPANIES = [f"co{i:03d}" for i in range(300)]


class FakeVllm:
    """One server's answers: its listing, the adapters loaded into it, and whether it is down."""

    def __init__(self, url: str) -> None:
        self.url, self.down, self.listed, self.completions = url, False, {"base"}, Counter()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": name} for name in sorted(self.listed)]})
        if request.url.path == "/v1/load_lora_adapter":
            self.listed.add(json.loads(request.content)["lora_name"])
            return httpx.Response(200, text="ok")
        if request.url.path == "/v1/unload_lora_adapter":
            self.listed.discard(json.loads(request.content)["lora_name"])
            return httpx.Response(200, text="ok")
        model = json.loads(request.content)["model"]
        if model not in self.listed:
            return httpx.Response(404, json={"error": f"no model {model}"})
        self.completions[model] += 1
        return httpx.Response(200, json={"model": model, "choices": [{"text": self.url, "finish_reason": "stop"}]})

    def backend(self) -> Backend:
        return Backend(self.url, VllmApi(self.url, 5, attempts=1, transport=httpx.MockTransport(self)),
                       AsyncVllmApi(self.url, 5, attempts=1, transport=httpx.MockTransport(self)))


def pool(n: int) -> tuple[list[FakeVllm], Backends]:
    fakes = [FakeVllm(f"http://vllm{i}:80") for i in range(n)]
    return fakes, Backends([f.backend() for f in fakes])


def test_rendezvous_spreads_companies_and_a_lost_server_moves_only_its_own() -> None:
    _, backends = pool(3)
    before = {c: backends.owner(c).url for c in COMPANIES}
    assert before == {c: backends.owner(c).url for c in COMPANIES}  # the same on every call (and every process)
    shares = Counter(before.values())
    assert len(shares) == 3 and min(shares.values()) > 60, shares  # about a third each
    lost = backends.all[1]
    backends.mark(lost, False)
    after = {c: backends.owner(c).url for c in COMPANIES}
    moved = {c for c in COMPANIES if before[c] != after[c]}
    assert moved == {c for c in COMPANIES if before[c] == lost.url}  # nobody else moves
    assert lost.url not in after.values()
    backends.mark(lost, True)
    assert {c: backends.owner(c).url for c in COMPANIES} == before  # and they come back


def test_settings_name_every_server() -> None:
    assert Settings(vllm_url="http://127.0.0.1:8010", vllm_servers=3).vllm_backend_urls == [
        "http://127.0.0.1:8010", "http://127.0.0.1:8011", "http://127.0.0.1:8012"]
    assert Settings(vllm_urls="http://a:1, http://b:2/").vllm_backend_urls == ["http://a:1", "http://b:2"]
    assert Settings().vllm_backend_urls == [Settings().vllm_url]


def _adapter_dir(settings: Settings, company: str) -> Path:
    return fake_adapter(settings.home / "adapters" / company / "v1", settings.base_model_path)


def test_a_server_that_goes_away_hands_its_companies_to_the_next_with_their_adapters(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    Path(settings.base_model_path).mkdir(parents=True)
    fakes, backends = pool(2)
    router = AdapterRouter()
    manager = AdapterManager(settings, backends.first.api, router, producer=None, backends=backends)  # type: ignore[arg-type]
    companies = COMPANIES[:20]
    for company in companies:
        uri = f"file://{_adapter_dir(settings, company)}"
        router.set(ActiveAdapter(company, "v1", served_name(company), uri, "base", 8))
    state = GatewayState(router, backends.first.async_api, "base", backends, manager.ensure_on)

    async def ask_all() -> Counter[str]:
        served: Counter[str] = Counter()
        for company in companies:
            completion = await state.complete(company, served_name(company), router.get(company), "hi", 4, None)
            served[completion.text] += 1
        return served

    first = asyncio.run(ask_all())
    assert set(first) == {f.url for f in fakes}  # both serve, each its own companies, adapters loaded on first use
    owned = {c: backends.owner(c) for c in companies}
    lost = fakes[0]
    lost.down = True
    second = asyncio.run(ask_all())  # nothing fails: the lost server's companies are asked of the other
    assert second == Counter({fakes[1].url: len(companies)})
    assert not backends.all[0].up
    moved = [c for c in companies if owned[c] is backends.all[0]]
    assert moved and all(served_name(c) in fakes[1].listed for c in moved)  # their adapters were loaded there
    assert all(backends.holds(backends.all[1], c) == "v1" for c in moved)

    # the lost server comes back empty (a restart forgets runtime adapters): the supervisor's check notices it
    lost.down, lost.listed = False, {"base"}
    missing = manager.missing()
    assert backends.all[0].up and not backends.all[0].loaded
    assert {a.company_id for a in missing} == set(moved)  # routed home again, where nothing is loaded yet
    assert {a.company_id for a in manager.resync()} == set(moved)
    assert manager.missing() == []
    third = asyncio.run(ask_all())
    assert third == first


def test_no_server_answering_is_unavailable_not_a_wrong_answer(tmp_path: Path) -> None:
    fakes, backends = pool(2)
    for fake in fakes:
        fake.down = True
    state = GatewayState(AdapterRouter(), backends.first.async_api, "base", backends)
    with pytest.raises(InferenceUnavailable):
        asyncio.run(state.complete("acme", "base", None, "hi", 4, None))
    assert not any(b.up for b in backends.all)
