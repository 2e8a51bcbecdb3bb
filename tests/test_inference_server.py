"""The real vLLM server on the tiny model: adapters from events, in-place replacement, refusals,
schema-valid tool calls, restart, and fast failure when the server is down."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from cda.settings import Settings
from inference.client import InferenceClient
from inference.errors import InferenceUnavailable
from inference.gateway import GatewayState, create_app
from inference.lifecycle import AdapterManager
from inference.routing import AdapterRouter, served_name
from inference.vllm_api import AsyncVllmApi, VllmApi
from topics.consumer import EventConsumer
from topics.events import Event
from topics.positions import Position
from topics.producer import EventProducer

pytestmark = [pytest.mark.kafka, pytest.mark.vllm]
Catalog = Callable[..., Settings]
PROMPT = "Task: invoice the order 42 for acme\nCall:"
SCHEMA = {"type": "object", "properties": {"action": {"enum": ["create", "delete", "update"]},
                                            "count": {"type": "integer", "minimum": 0, "maximum": 9}},
          "required": ["action", "count"], "additionalProperties": False}


@pytest.fixture(scope="session")
def adapters(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Servable adapters (seeded, distinct) and broken ones, built once."""
    from inference.random_adapter import make_adapter, retarget

    root = tmp_path_factory.mktemp("adapters")
    built = {name: make_adapter(tiny_model, root / name, seed=i) for i, name in enumerate(("a", "b", "c"))}
    built["big"] = make_adapter(tiny_model, root / "big", seed=9, rank=32)
    other = make_adapter(tiny_model, root / "other", seed=10)
    retarget(other, "/models/some-other-base")
    built["other"] = other
    missing = root / "missing"
    missing.mkdir()
    built["missing"] = missing
    corrupt = root / "corrupt"
    shutil.copytree(built["a"], corrupt)
    weights = corrupt / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: len(weights.read_bytes()) // 2])
    built["corrupt"] = corrupt
    return built


class Harness:
    """The lifecycle consumer in a thread and the gateway in process, against the session's vLLM."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.router = AdapterRouter()
        self.producer = EventProducer(settings)
        self.manager = AdapterManager(settings, VllmApi(settings.vllm_url), self.router, self.producer)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.manager.run, args=(self._stop, f"{settings.topic_prefix}lifecycle"))

    def announce(self, company: str, version: str, path: Path, base: str | None = None) -> None:
        with EventProducer(self.settings) as producer:
            producer.produce(Event.new(
                "lora_adapter_ready", company, request_id=f"r-{version}", adapter_name=f"{company}-{version}",
                version=version, uri=f"file://{path}", base_model=base or self.settings.base_model_path, rank=8,
                dataset_hash="h", metrics={"exact_match": 0.9}))

    def outcomes(self, count: int, timeout_s: float = 60) -> list[Event]:
        """The first `count` activations and refusals, in the order published."""
        found: list[Event] = []
        deadline = time.monotonic() + timeout_s
        while len(found) < count and time.monotonic() < deadline:
            found = []
            for topic in ("company_adapters", "lora_training_status"):
                with EventConsumer(self.settings, f"check-{uuid.uuid4()}") as consumer:
                    consumer.assign(topic, Position.beginning(), until_end=True)
                    found += [r.event for r in consumer if r.event.type in ("adapter_activated", "adapter_refused")]
            time.sleep(0.2)
        return sorted(found, key=lambda e: e.occurred_at)

    def complete(self, company: str, **kwargs: object) -> dict:  # type: ignore[type-arg]
        async def call() -> dict:  # type: ignore[type-arg]
            state = GatewayState(self.router, AsyncVllmApi(self.settings.vllm_url), self.settings.served_base_name)
            transport = httpx.ASGITransport(app=create_app(state))
            gateway = self.settings.model_copy(update={"inference_url": "http://gateway"})
            async with InferenceClient(gateway, transport=transport) as client:
                result = await client.complete(company, PROMPT, **kwargs)  # type: ignore[arg-type]
            await state.api.close()
            return result.__dict__
        return asyncio.run(call())

    def __enter__(self) -> Harness:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def harness(catalog: Catalog, vllm_url: str, tiny_model: str) -> Iterator[Harness]:
    settings = catalog("lora_adapter_ready", "lora_training_status", "company_adapters", "dead_letters")
    settings = settings.model_copy(update={"vllm_url": vllm_url, "base_model": tiny_model})
    with Harness(settings) as h:
        yield h


def company() -> str:
    return f"co{uuid.uuid4().hex[:8]}"


def test_two_companies_get_their_own_adapters_and_outputs_differ(harness: Harness, adapters: dict[str, Path]) -> None:
    acme, globex, nobody = company(), company(), company()
    harness.announce(acme, "v1", adapters["a"])
    harness.announce(globex, "v1", adapters["b"])
    events = harness.outcomes(2)
    assert [e.type for e in events] == ["adapter_activated", "adapter_activated"]
    assert {e.company_id: e["served_name"] for e in events} == {acme: served_name(acme), globex: served_name(globex)}
    out_a, out_b, out_base = (harness.complete(c, max_tokens=12) for c in (acme, globex, nobody))
    assert out_a["adapter_version"] == "v1" and not out_a["used_base"] and out_a["model"] == served_name(acme)
    assert out_base["used_base"] and out_base["adapter_version"] is None and out_base["model"] == "base"
    assert len({out_a["text"], out_b["text"], out_base["text"]}) == 3
    assert harness.complete(acme, max_tokens=12)["text"] == out_a["text"]  # deterministic per adapter


def test_guided_tool_calls_are_schema_valid_and_cut_off_ones_are_refused(harness: Harness, adapters: dict[str, Path]) -> None:
    acme = company()
    harness.announce(acme, "v1", adapters["a"])
    harness.outcomes(1)
    for who in (acme, company()):
        call = harness.complete(who, max_tokens=40, json_schema=SCHEMA)
        assert call["tool_call_valid"] is True, call
        assert call["arguments"]["action"] in ("create", "delete", "update") and 0 <= call["arguments"]["count"] <= 9
    cut = harness.complete(acme, max_tokens=2, json_schema=SCHEMA)
    assert cut["tool_call_valid"] is False and cut["arguments"] is None
    assert cut["finish_reason"] == "length" and "cut off" in cut["tool_call_error"] and cut["text"]


def test_a_new_version_replaces_the_old_in_place(harness: Harness, adapters: dict[str, Path]) -> None:
    acme = company()
    harness.announce(acme, "v1", adapters["a"])
    harness.outcomes(1)
    first = harness.complete(acme, max_tokens=12)
    harness.announce(acme, "v2", adapters["c"])
    second_event = harness.outcomes(2)[1]
    assert second_event.type == "adapter_activated" and second_event["previous_version"] == "v1"
    second = harness.complete(acme, max_tokens=12)
    assert second["adapter_version"] == "v2" and second["model"] == first["model"] and second["text"] != first["text"]
    names = [n for n in VllmApi(harness.settings.vllm_url).models() if n.startswith(acme)]
    assert names == [served_name(acme)]  # no staging copies left behind


def test_bad_adapters_are_refused_while_the_old_one_keeps_serving(harness: Harness, adapters: dict[str, Path]) -> None:
    acme = company()
    harness.announce(acme, "v1", adapters["a"])
    harness.outcomes(1)
    before = harness.complete(acme, max_tokens=12)
    bad = [("v-big", adapters["big"], None), ("v-other", adapters["other"], None),
           ("v-missing", adapters["missing"], None), ("v-corrupt", adapters["corrupt"], None),
           ("v-base", adapters["b"], "/models/another-base")]
    for version, path, base in bad:
        harness.announce(acme, version, path, base)
    events = harness.outcomes(1 + len(bad))
    refused = {e["version"]: e["error_kind"] for e in events if e.type == "adapter_refused"}
    assert refused == {"v-big": "rank_too_large", "v-other": "wrong_base_model", "v-missing": "missing_files",
                       "v-corrupt": "corrupt_files", "v-base": "wrong_base_model"}
    assert all(e.data["reason"] for e in events if e.type == "adapter_refused")
    after = harness.complete(acme, max_tokens=12)
    assert after["adapter_version"] == "v1" and after["text"] == before["text"]


def test_restore_registers_active_adapters_on_a_fresh_server(
    harness: Harness, adapters: dict[str, Path], tmp_path: Path
) -> None:
    from inference.server import VllmServer
    from tests.conftest import free_port

    acme = company()
    harness.announce(acme, "v1", adapters["a"])
    harness.outcomes(1)
    expected = harness.complete(acme, max_tokens=12)["text"]
    fresh = harness.settings.model_copy(update={"vllm_url": f"http://127.0.0.1:{free_port()}", "home": tmp_path})
    server = VllmServer(fresh)
    server.start()  # a restarted server knows no adapters until they are registered again
    try:
        assert served_name(acme) not in VllmApi(fresh.vllm_url).models()
        router = AdapterRouter()
        restored = AdapterManager(fresh, VllmApi(fresh.vllm_url), router, EventProducer(fresh)).restore()
        assert acme in {a.company_id for a in restored}
        completion = VllmApi(fresh.vllm_url).complete(served_name(acme), PROMPT, max_tokens=12)
        assert completion.text == expected
    finally:
        server.stop()


def test_requests_fail_fast_when_the_server_is_down(catalog: Catalog) -> None:
    from tests.conftest import free_port

    settings = catalog("dead_letters").model_copy(update={"inference_url": f"http://127.0.0.1:{free_port()}",
                                                          "inference_timeout_s": 2})

    async def call() -> None:
        async with InferenceClient(settings) as client:
            await client.complete("acme", "hello")

    started = time.monotonic()
    with pytest.raises(InferenceUnavailable, match=settings.inference_url):
        asyncio.run(call())
    assert time.monotonic() - started < 10


def test_the_service_wires_lifecycle_gateway_health_and_metrics(
    catalog: Catalog, vllm_url: str, tiny_model: str, adapters: dict[str, Path]
) -> None:
    from inference.service import InferenceService

    settings = catalog("lora_adapter_ready", "lora_training_status", "company_adapters", "dead_letters")
    settings = settings.model_copy(update={"vllm_url": vllm_url, "base_model": tiny_model})
    service = InferenceService(settings, manage_server=False)
    service.start_backend()
    try:
        acme = company()
        Harness(settings).announce(acme, "v1", adapters["a"])
        deadline = time.monotonic() + 60
        while service.router.get(acme) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert service.router.get(acme) is not None

        async def exercise() -> tuple[int, dict, str]:  # type: ignore[type-arg]
            service.state.api = AsyncVllmApi(vllm_url)  # bound to this event loop
            transport = httpx.ASGITransport(app=create_app(service.state))
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
                ready = await http.get("/health/ready")
                for who in (acme, acme, "nobody"):
                    answer = await http.post("/v1/complete", json={"company_id": who, "prompt": PROMPT, "max_tokens": 4})
                    assert answer.status_code == 200
                listed = (await http.get("/v1/adapters")).json()
                metrics = (await http.get("/metrics")).text
            return ready.status_code, {a["company_id"]: a["version"] for a in listed}, metrics

        status, listed, metrics = asyncio.run(exercise())
        assert status == 200 and listed[acme] == "v1"
        assert f'cda_inference_requests_total{{model="{served_name(acme)}",outcome="ok"}} 2.0' in metrics
        assert 'cda_inference_requests_total{model="base",outcome="ok"} 1.0' in metrics
        assert f'cda_inference_latency_seconds_count{{model="{served_name(acme)}"}} 2.0' in metrics
    finally:
        service.shutdown()
