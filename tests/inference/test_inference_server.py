"""The real vLLM server on the tiny model: adapters from events, in-place replacement, refusals,
schema-valid tool calls, restore, poison records, a killed and restarted vLLM, SIGTERM, and fast failure
when the server is down."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from core.settings import Settings, settings_env
from core.workers import WorkerThread
from inference.adapter_places import registry_root
from inference.client import InferenceClient
from inference.errors import InferenceUnavailable
from inference.gateway import GatewayState, create_app
from inference.lifecycle import AdapterManager
from inference.random_adapter import place_in_registry
from inference.routing import AdapterRouter, served_name, staging_name
from inference.vllm_api import AsyncVllmApi, VllmApi
from tests.helpers import eventually, free_port, port_free
from topics.connection import topic_name
from topics.consumer import EventConsumer
from topics.events import Event
from topics.positions import Position
from topics.producer import EventProducer
from topics.serde import serde_for

pytestmark = [pytest.mark.kafka, pytest.mark.vllm]
Catalog = Callable[..., Settings]
PROMPT = "Task: invoice the order 42 for acme\nCall:"
SCHEMA = {"type": "object", "properties": {"action": {"enum": ["create", "delete", "update"]},
                                            "count": {"type": "integer", "minimum": 0, "maximum": 9}},
          "required": ["action", "count"], "additionalProperties": False}


class Harness:
    """The lifecycle consumer in a worker thread and the gateway in process, against the session's vLLM."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.router = AdapterRouter()
        self.producer = EventProducer(settings)
        self.manager = AdapterManager(settings, VllmApi(settings.vllm_url), self.router, self.producer)
        group = f"{settings.topic_prefix}lifecycle"
        self.worker = WorkerThread("adapter-lifecycle", lambda stop: self.manager.run(stop, group), threading.Event())

    def place(self, company: str, version: str, source: Path) -> Path:
        """The adapter copied where the trainer's registry keeps it: `<home>/adapters/<company>/<version>`."""
        return place_in_registry(registry_root(self.settings), company, version, source)

    def announce(self, company: str, version: str, source: Path | None = None, base: str | None = None,
                 uri: str | None = None) -> None:
        """`lora_adapter_ready` for `source` placed in the company's registry folder (or for `uri` as given)."""
        if uri is None:
            assert source is not None
            uri = f"file://{self.place(company, version, source)}"
        with EventProducer(self.settings) as producer:
            producer.produce(Event.new(
                "lora_adapter_ready", company, request_id=f"r-{version}", adapter_name=f"{company}-{version}",
                version=version, uri=uri, base_model=base or self.settings.base_model_path, rank=8,
                dataset_hash="h", metrics={"exact_match": 0.9}))

    def read(self, topic: str) -> list[Event]:
        with EventConsumer(self.settings, f"check-{uuid.uuid4()}") as consumer:
            consumer.assign(topic, Position.beginning(), until_end=True)
            return [r.event for r in consumer]

    def outcomes(self, count: int, timeout_s: float = 60) -> list[Event]:
        """The first `count` activations and refusals, in the order published."""
        found: list[Event] = []

        def enough() -> bool:
            nonlocal found
            found = [e for t in ("company_adapters", "lora_training_status") for e in self.read(t)
                     if e.type in ("adapter_activated", "adapter_refused")]
            return len(found) >= count

        eventually(enough, timeout_s, f"{count} activations or refusals", interval_s=0.2)
        return sorted(found, key=lambda e: e.occurred_at)

    def complete(self, company: str, **kwargs: object) -> dict:  # type: ignore[type-arg]
        async def call() -> dict:  # type: ignore[type-arg]
            state = GatewayState(self.router, AsyncVllmApi(self.settings.vllm_url), self.settings.served_base_name)
            transport = httpx.ASGITransport(app=create_app(state))
            gateway = self.settings.model_copy(update={"inference_url": "http://gateway"})
            async with InferenceClient(gateway, transport=transport) as client:
                result = await client.complete(company, PROMPT, **kwargs)  # type: ignore[arg-type]
            await state.api.close()
            return result.model_dump()
        return asyncio.run(call())

    def __enter__(self) -> Harness:
        self.worker.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.worker.stop.set()
        self.worker.join(30)
        assert self.worker.error is None, f"the lifecycle died: {self.worker.error!r}"


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
        assert call["tool_call"]["valid"] is True, call
        arguments = call["tool_call"]["arguments"]
        assert arguments["action"] in ("create", "delete", "update") and 0 <= arguments["count"] <= 9
    cut = harness.complete(acme, max_tokens=2, json_schema=SCHEMA)
    assert cut["tool_call"]["valid"] is False and cut["tool_call"]["arguments"] is None
    assert cut["finish_reason"] == "length" and "cut off" in cut["tool_call"]["error"] and cut["text"]


def test_a_new_version_replaces_the_old_in_place_and_a_rollback_is_one_more_version(
    harness: Harness, adapters: dict[str, Path]
) -> None:
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
    # a rollback is a new announcement of a stored older version (forced by the trainer): handled like any other
    harness.announce(acme, "v1", adapters["a"])
    third_event = harness.outcomes(3)[2]
    assert third_event.type == "adapter_activated" and (third_event["version"], third_event["previous_version"]) == ("v1", "v2")
    assert harness.complete(acme, max_tokens=12)["text"] == first["text"]
    harness.announce(acme, "v-big", adapters["big"])  # a refusal changes nothing that is served
    assert harness.outcomes(4)[3].type == "adapter_refused"
    after = harness.complete(acme, max_tokens=12)
    assert (after["adapter_version"], after["text"]) == ("v1", first["text"]) and harness.router.get(acme).version == "v1"


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


def test_a_repeated_load_never_refuses_a_good_adapter_and_restore_clears_stale_staging(
    harness: Harness, adapters: dict[str, Path]
) -> None:
    """What a kill between load and unload leaves behind (the staging copy), and what a retried POST whose
    first attempt succeeded leaves (the served name), must not turn a good first version into a refusal."""
    acme = company()
    path = harness.place(acme, "v1", adapters["a"])
    api = VllmApi(harness.settings.vllm_url)
    for name in (staging_name(acme, "v1"), served_name(acme)):
        assert api.load_adapter(name, str(path), inplace=False).status_code == 200
    harness.announce(acme, "v1", adapters["a"])
    assert [e.type for e in harness.outcomes(1)] == ["adapter_activated"]
    assert harness.complete(acme, max_tokens=4)["adapter_version"] == "v1"
    stale, trainers = staging_name(acme, "v0"), f"eval-{acme}-1a2b3c4d"
    for name in (stale, trainers):
        assert api.load_adapter(name, str(path), inplace=False).status_code == 200
    restored = AdapterManager(harness.settings, api, AdapterRouter(), harness.producer).restore()
    assert [a.company_id for a in restored] == [acme]
    listed = api.models()
    assert stale not in listed and trainers in listed and served_name(acme) in listed  # eval-* is the trainer's
    api.unload_adapter(trainers)


def test_no_company_is_served_another_companys_adapter_not_even_on_restore(
    harness: Harness, adapters: dict[str, Path]
) -> None:
    acme, globex = company(), company()
    harness.announce(acme, "v1", adapters["a"])
    harness.outcomes(1)
    acme_files = registry_root(harness.settings) / acme / "v1"
    harness.announce(globex, "v1", uri=f"file://{acme_files}")
    refusal = harness.outcomes(2)[1]
    assert (refusal.type, refusal.company_id, refusal["error_kind"]) == ("adapter_refused", globex, "foreign_uri")
    assert harness.router.get(globex) is None and harness.complete(globex, max_tokens=4)["used_base"]
    # an activation naming another company's files (written by anyone who can produce) is not restored
    with EventProducer(harness.settings) as producer:
        producer.produce(Event.new("adapter_activated", globex, version="v1", served_name=served_name(globex),
                                   uri=f"file://{acme_files}", base_model=harness.settings.base_model_path, rank=8))
    router = AdapterRouter()
    restored = AdapterManager(harness.settings, VllmApi(harness.settings.vllm_url), router, harness.producer).restore()
    assert [a.company_id for a in restored] == [acme] and router.get(globex) is None
    assert served_name(globex) not in VllmApi(harness.settings.vllm_url).models()
    refusals = [e for e in harness.read("lora_training_status") if e.type == "adapter_refused" and e.company_id == globex]
    assert [e["error_kind"] for e in refusals] == ["foreign_uri", "foreign_uri"]


def test_poison_records_are_dead_lettered_and_the_lifecycle_goes_on(harness: Harness, adapters: dict[str, Path]) -> None:
    acme = company()
    ready_topic = topic_name(harness.settings, "lora_adapter_ready")
    wrong_type = Event.new("adapter_activated", acme, version="v0", served_name=served_name(acme),
                           uri=f"file://{harness.place(acme, 'v0', adapters['a'])}",
                           base_model=harness.settings.base_model_path, rank=8)
    with EventProducer(harness.settings) as producer:  # a wrong event type on the topic, same partition as acme's
        producer.produce_raw(ready_topic, acme.encode(), serde_for().encode(wrong_type, ready_topic))
    harness.announce(acme, "v-bad-config", adapters["bad-config"])  # adapter_config.json: "r": "eight"
    loop = registry_root(harness.settings) / acme / "v-loop"
    loop.symlink_to(loop)  # a symlink loop: resolving the URI raises RuntimeError, a bug-class failure
    harness.announce(acme, "v-loop", uri=f"file://{loop}")
    harness.announce(acme, "v1", adapters["a"])
    events = harness.outcomes(3)
    assert [(e.type, e["version"], e.data.get("error_kind")) for e in events] == [
        ("adapter_refused", "v-bad-config", "corrupt_files"),
        ("adapter_refused", "v-loop", "internal"),
        ("adapter_activated", "v1", None),
    ]
    assert harness.worker.alive and harness.complete(acme, max_tokens=4)["adapter_version"] == "v1"
    letters: list[Event] = []

    def both_dead_lettered() -> bool:
        nonlocal letters
        letters = [e for e in harness.read("dead_letters") if e["source_topic"] == ready_topic]
        return len(letters) >= 2

    eventually(both_dead_lettered, 30, "the wrong-type record and the raising one in dead_letters")
    reasons = sorted(e["reason"] for e in letters)
    assert any("adapter_activated" in r for r in reasons) and any("Symlink loop" in r for r in reasons), reasons


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


def readiness(state: GatewayState, vllm_url: str) -> dict:  # type: ignore[type-arg]
    """The gateway's /health/ready answer (with its status code), asked in process."""
    async def ask() -> dict:  # type: ignore[type-arg]
        state.api = AsyncVllmApi(vllm_url)  # bound to this event loop
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(state)), base_url="http://gateway") as http:
            answer = await http.get("/health/ready")
        await state.api.close()
        return {"status": answer.status_code, **answer.json()}
    return asyncio.run(ask())


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
        eventually(lambda: service.router.get(acme) is not None, 60, f"{acme}'s adapter active")

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
        assert readiness(service.state, vllm_url)["workers"] == {"adapter-lifecycle": True, "vllm-supervisor": True}
    finally:
        service.shutdown()


def test_an_external_vllm_killed_and_restarted_gets_its_adapters_back_without_restarting_the_service(
    catalog: Catalog, tiny_model: str, adapters: dict[str, Path]
) -> None:
    """`--external` mode: a restarted vLLM forgets runtime adapters; the service notices, registers every
    company's adapter again, and is not ready in between."""
    from inference.server import VllmServer
    from inference.service import InferenceService

    settings = catalog("lora_adapter_ready", "lora_training_status", "company_adapters", "dead_letters")
    settings = settings.model_copy(update={"vllm_url": f"http://127.0.0.1:{free_port()}", "base_model": tiny_model,
                                           "vllm_watch_interval_s": 0.5})
    external = VllmServer(settings)  # started by someone else (compose): the service only uses it
    external.start()
    service = InferenceService(settings, manage_server=False)
    try:
        service.start_backend()
        acme, globex = company(), company()
        for who, adapter in ((acme, adapters["a"]), (globex, adapters["b"])):
            Harness(settings).announce(who, "v1", adapter)
        eventually(lambda: service.router.get(acme) and service.router.get(globex), 60, "both adapters active")
        expected = VllmApi(settings.vllm_url).complete(served_name(acme), PROMPT, max_tokens=12).text
        assert readiness(service.state, settings.vllm_url)["status"] == 200

        assert external.process is not None
        os.killpg(external.process.pid, signal.SIGKILL)
        external.process.wait(30)
        eventually(lambda: not readiness(service.state, settings.vllm_url)["adapters_registered"], 30,
                   "readiness false, adapters not registered, while vLLM is gone")
        assert readiness(service.state, settings.vllm_url)["status"] == 503
        external.start()  # the same address; a fresh server knows no runtime adapter
        eventually(lambda: readiness(service.state, settings.vllm_url)["status"] == 200, 60,
                   "ready again with every adapter registered")
        listed = VllmApi(settings.vllm_url).models()
        assert served_name(acme) in listed and served_name(globex) in listed and service.resyncs >= 1
        assert VllmApi(settings.vllm_url).complete(served_name(acme), PROMPT, max_tokens=12).text == expected
        assert all(w.alive for w in service.state.workers)
    finally:
        service.shutdown()
        external.stop()


def _descendants(pid: int) -> list[int]:
    import psutil

    return [p.pid for p in psutil.Process(pid).children(recursive=True)]


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_inference_serve_killed_or_stopped_leaves_nothing_and_starts_again(catalog: Catalog, tiny_model: str,
                                                                          tmp_path: Path) -> None:
    """SIGKILL to `cda inference serve` (no cleanup of its own runs): its vLLM, engine process included, goes
    with it and the ports are free (before: vLLM lived on and the supervisor looped on the held port); the next
    start works; SIGTERM then stops it with its children too."""
    settings = catalog("lora_adapter_ready", "lora_training_status", "company_adapters", "dead_letters")
    vllm_port, gateway_port = free_port(), free_port()
    env = settings_env(settings.model_copy(update={"base_model": tiny_model, "vllm_url": f"http://127.0.0.1:{vllm_port}",
                                                   "inference_url": f"http://127.0.0.1:{gateway_port}"}))
    log = (tmp_path / "serve.log").open("wb")
    children: list[int] = []
    serve: subprocess.Popen[bytes] | None = None

    def start() -> subprocess.Popen[bytes]:
        started = subprocess.Popen([sys.executable, "-m", "cda.cli.main", "inference", "serve"], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def ready() -> bool:
            if started.poll() is not None:
                raise AssertionError(f"serve exited with {started.returncode}: {(tmp_path / 'serve.log').read_text()[-3000:]}")
            try:
                return httpx.get(f"http://127.0.0.1:{gateway_port}/health/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        eventually(ready, 300, "cda inference serve ready")
        return started

    try:
        for how in (signal.SIGKILL, signal.SIGTERM):
            serve = start()
            children = _descendants(serve.pid)
            assert len(children) >= 2, "vLLM and its engine process run under the service"
            serve.send_signal(how)
            assert serve.wait(90) in (-signal.SIGKILL, 128 + signal.SIGTERM)
            eventually(lambda left=children: not any(_alive(pid) for pid in left), 30, f"no child of serve outlives {how.name}")
            eventually(lambda: port_free(vllm_port) and port_free(gateway_port), 30, "the ports free")
    finally:
        if serve is not None and serve.poll() is None:
            serve.kill()
        for pid in children:  # only when the test failed: what it started must not outlive it
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        log.close()
