"""Two real vLLM servers run by one inference service (`cda up --vllm-servers 2`): companies spread over both, each
served its own adapter, and one server SIGKILLed in the middle of a stream of requests fails none of them — its
companies are answered by the other server, with their own adapters loaded there, as they were before; the
service starts the lost server again and its companies go back to it."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from core.settings import Settings
from inference.adapter_places import registry_root
from inference.backends import Backends
from inference.gateway import create_app
from inference.random_adapter import place_in_registry
from inference.routing import served_name
from inference.service import InferenceService
from inference.vllm_api import AsyncVllmApi
from tests.helpers import eventually, free_port, port_free
from topics.events import Event
from topics.producer import EventProducer

pytestmark = [pytest.mark.kafka, pytest.mark.vllm, pytest.mark.timeout(900)]
PROMPT = "Task: invoice the order 42 for acme\nCall:"


def _companies(urls: list[str], per_server: int) -> list[str]:
    """Company ids of which each server owns `per_server` (rendezvous is a pure function of the ids)."""
    ranking = Backends.of(urls, 5)
    owned: dict[str, list[str]] = {url: [] for url in urls}
    while min(len(v) for v in owned.values()) < per_server:
        company = f"co{uuid.uuid4().hex[:8]}"
        mine = owned[ranking.owner(company).url]
        if len(mine) < per_server:
            mine.append(company)
    return [c for v in owned.values() for c in v]


def _two_free_ports() -> int:
    """A port whose next one is free too."""
    while True:
        port = free_port()
        if port_free(port + 1):
            return port


def test_two_servers_share_companies_and_losing_one_fails_no_request(
    catalog: Callable[..., Settings], tiny_model: str, adapters: dict[str, Path]
) -> None:
    settings = catalog("lora_adapter_ready", "lora_training_status", "company_adapters", "dead_letters")
    settings = settings.model_copy(update={"vllm_url": f"http://127.0.0.1:{_two_free_ports()}", "vllm_servers": 2,
                                           "base_model": tiny_model, "vllm_watch_interval_s": 0.5})
    urls = settings.vllm_backend_urls
    service = InferenceService(settings, manage_server=True)
    lost = service.servers[1]
    companies = _companies(urls, 2)
    try:
        service.start_backend()
        with EventProducer(settings) as producer:
            for i, who in enumerate(companies):
                folder = place_in_registry(registry_root(settings), who, "v1", adapters["abc"[i % 3]])
                producer.produce(Event.new("lora_adapter_ready", who, request_id="r-v1", adapter_name=f"{who}-v1",
                                           version="v1", uri=f"file://{folder}", base_model=tiny_model, rank=8,
                                           dataset_hash="h", metrics={"exact_match": 0.9}))
        eventually(lambda: all(service.router.get(c) for c in companies), 120, "every company's adapter active")
        holders = {c: [b.url for b in service.backends.holders(c)] for c in companies}
        assert {tuple(h) for h in holders.values()} == {(urls[0],), (urls[1],)}, holders  # spread over both

        async def stream(kill_after: int) -> list[dict]:  # type: ignore[type-arg]
            for backend in service.backends.all:  # bound to this event loop
                backend.async_api = AsyncVllmApi(backend.url, settings.inference_timeout_s)
            answers = []
            transport = httpx.ASGITransport(app=create_app(service.state))
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=60) as http:
                for n in range(3 * len(companies)):
                    if n == kill_after:
                        assert lost.process is not None
                        os.killpg(lost.process.pid, signal.SIGKILL)  # mid-stream, no warning
                    who = companies[n % len(companies)]
                    answer = await http.post("/v1/complete", json={"company_id": who, "prompt": PROMPT, "max_tokens": 8})
                    answers.append({"company": who, "status": answer.status_code, **answer.json()})
            return answers

        before = asyncio.run(stream(kill_after=-1))
        assert all(a["status"] == 200 and not a["used_base"] and a["adapter_version"] == "v1" for a in before)
        expected = {a["company"]: a["text"] for a in before}
        during = asyncio.run(stream(kill_after=len(companies)))
        failed = [a for a in during if a["status"] != 200]
        assert not failed, failed  # no request failed for the lost server
        assert all(not a["used_base"] and a["adapter_version"] == "v1" for a in during)
        assert all(a["text"] == expected[a["company"]] for a in during)  # each still its own adapter's answer
        moved = [c for c in companies if holders[c] == [urls[1]]]
        assert moved and all(served_name(c) in service.backends.first.api.models() for c in moved)  # loaded there

        # the service starts the lost server again; its companies go back to it, their adapters with them
        eventually(lambda: lost.alive() and service.backends.all[1].up and not service.manager.missing(), 240,
                   "the lost server back, serving its companies' adapters")
        assert all(served_name(c) in service.backends.all[1].api.models() for c in moved)
        after = asyncio.run(stream(kill_after=-1))
        assert all(a["status"] == 200 and a["text"] == expected[a["company"]] for a in after)
    finally:
        service.shutdown()
