"""Adapters that travel: the trainer's home and inference's share nothing but the adapter registry's URL. The
registry is the real HTTP server (`cda inference registry`'s app under uvicorn), the archive the real packing;
with vLLM, the lifecycle downloads, checks and serves an adapter announced by its registry URI."""

from __future__ import annotations

import io
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from core.adapter_archive import ArchiveError, digest, pack, unpack
from core.settings import Settings
from inference.adapter_places import company_adapter_dir
from inference.adapter_store import materialize, publish
from inference.adapter_store_http import HttpAdapterStore
from inference.errors import AdapterInvalid
from inference.registry_app import create_registry_app
from tests.helpers import free_port

TOKEN = "registry-token-" + "x" * 20


class ServedApp:
    """An ASGI app under uvicorn on a loopback port, in a thread of this process."""

    def __init__(self, app: object, what: str) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, f"{what} did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class Registry(ServedApp):
    """The registry app on a loopback port, its archives in `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        super().__init__(create_registry_app(root, TOKEN), "the registry")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    running = Registry(tmp_path / "registry")
    yield running
    running.stop()


def _home(tmp_path: Path, name: str, registry: Registry) -> Settings:
    return Settings(home=tmp_path / name, adapter_registry_url=registry.url, adapter_registry_token=TOKEN)


def _adapter(folder: Path, seed: int = 1) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text('{"r": 8, "seed": %d}' % seed)
    (folder / "adapter_model.safetensors").write_bytes(bytes(range(256)) * (50 + seed))
    (folder / "nested").mkdir()
    (folder / "nested" / "notes.txt").write_text("kept")
    return folder


def test_packing_is_deterministic_and_unpacking_keeps_to_its_folder(tmp_path: Path) -> None:
    source = _adapter(tmp_path / "a")
    assert pack(source) == pack(source)
    unpack(pack(source), tmp_path / "out")
    assert (tmp_path / "out" / "nested" / "notes.txt").read_text() == "kept"
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ArchiveError, match="outside"):
        unpack(evil.getvalue(), tmp_path / "evil")
    assert not (tmp_path / "escaped").exists()


def test_an_adapter_travels_between_two_homes_through_the_registry_only(tmp_path: Path, registry: Registry) -> None:
    trainer, inference = _home(tmp_path, "trainer", registry), _home(tmp_path, "inference", registry)
    source = _adapter(trainer.home / "adapters" / "acme" / "v1")
    uri = publish(trainer, source)
    assert uri == f"{registry.url}/v1/adapters/{digest(pack(source))}"
    path = company_adapter_dir(inference, "acme", uri)
    assert path.is_relative_to(inference.home / "adapters" / "acme")
    assert {p.relative_to(path): p.read_bytes() for p in path.rglob("*") if p.is_file()} == \
        {p.relative_to(source): p.read_bytes() for p in source.rglob("*") if p.is_file()}
    registry.stop()  # downloaded once: the next activation (a restart, a resync) needs no registry
    assert company_adapter_dir(inference, "acme", uri) == path


def test_a_tampered_archive_a_foreign_registry_and_a_wrong_token_are_refused(tmp_path: Path, registry: Registry) -> None:
    trainer = _home(tmp_path, "trainer", registry)
    uri = publish(trainer, _adapter(tmp_path / "a"))
    stored = registry.root / f"{uri.rsplit('/', 1)[1]}.tar.gz"
    stored.write_bytes(pack(_adapter(tmp_path / "b", seed=2)))  # the registry's disk altered
    with pytest.raises(AdapterInvalid) as refused:
        company_adapter_dir(_home(tmp_path, "inference", registry), "acme", uri)
    assert refused.value.kind == "hash_mismatch"
    assert not (tmp_path / "inference" / "adapters" / "acme").exists() or \
        not any((tmp_path / "inference" / "adapters" / "acme").iterdir())
    with pytest.raises(AdapterInvalid) as foreign:
        company_adapter_dir(_home(tmp_path, "other", registry), "acme", f"http://127.0.0.1:1/v1/adapters/{'0' * 64}")
    assert foreign.value.kind == "foreign_uri"
    data = pack(_adapter(tmp_path / "c", seed=3))
    wrong = httpx.put(f"{registry.url}/v1/adapters/{digest(data)}", content=data, headers={"Authorization": "Bearer no"})
    assert wrong.status_code == 401
    misnamed = httpx.put(f"{registry.url}/v1/adapters/{'a' * 64}", content=data,
                         headers={"Authorization": f"Bearer {TOKEN}"})
    assert misnamed.status_code == 422 and "hashes to" in misnamed.text
    with pytest.raises(AdapterInvalid) as missing:
        materialize(_home(tmp_path, "late", registry), "acme", HttpAdapterStore(registry.url).uri_of("b" * 64),
                    tmp_path / "late" / "adapters" / "acme")
    assert missing.value.kind == "missing"


@pytest.mark.kafka
@pytest.mark.vllm
def test_inference_downloads_checks_and_serves_an_adapter_it_never_had(  # type: ignore[no-untyped-def]
        catalog, vllm_url: str, tiny_model: str, registry: Registry, tmp_path: Path) -> None:
    """The trainer publishes from its home; the lifecycle, in another home, downloads the version the announcement
    names, checks its hash and serves it; an archive altered in the registry is refused, the good one keeps serving."""
    from pydantic import SecretStr

    from inference.random_adapter import make_adapter

    settings = catalog("lora_adapter_ready", "lora_training_status", "company_adapters", "dead_letters")
    settings = settings.model_copy(update={"vllm_url": vllm_url, "base_model": tiny_model, "home": tmp_path / "inference",
                                           "adapter_registry_url": registry.url,
                                           "adapter_registry_token": SecretStr(TOKEN)})
    trainer = _home(tmp_path, "trainer", registry)
    good = publish(trainer, make_adapter(tiny_model, tmp_path / "trainer" / "a", seed=1))
    bad = publish(trainer, make_adapter(tiny_model, tmp_path / "trainer" / "b", seed=2))
    (registry.root / f"{bad.rsplit('/', 1)[1]}.tar.gz").write_bytes(pack(_adapter(tmp_path / "x", seed=4)))
    serves_the_good_and_refuses_the_tampered(settings, good, bad)
    assert any((tmp_path / "inference" / "adapters" / "acme").iterdir())


def gateway_server(settings: Settings) -> ServedApp:
    """The inference gateway's app, staging the gate's candidates from `settings`' home."""
    from inference.candidates import CandidateStage
    from inference.gateway import GatewayState, create_app
    from inference.routing import AdapterRouter
    from inference.vllm_api import AsyncVllmApi, VllmApi

    state = GatewayState(AdapterRouter(), AsyncVllmApi(settings.vllm_url), settings.served_base_name,
                         candidates=CandidateStage(settings, VllmApi(settings.vllm_url)))
    return ServedApp(create_app(state), "the gateway")


def serves_the_good_and_refuses_the_tampered(settings: Settings, good: str, bad: str) -> None:
    """The lifecycle (in `settings`' home) serves the version `good` names, then refuses `bad` (its stored archive
    altered) with `hash_mismatch` while the good one keeps serving."""
    from tests.inference.test_inference_server import Harness

    with Harness(settings) as harness:
        harness.announce("acme", "v1", uri=good)
        harness.outcomes(1)
        served = harness.complete("acme", max_tokens=12)
        assert served["adapter_version"] == "v1" and not served["used_base"]
        harness.announce("acme", "v2", uri=bad)
        events = harness.outcomes(2)
    refused = [e for e in events if e.type == "adapter_refused"]
    assert [(e["version"], e["error_kind"]) for e in refused] == [("v2", "hash_mismatch")]


@pytest.mark.kafka
@pytest.mark.vllm
@pytest.mark.timeout(900)
def test_trainer_and_inference_in_separate_homes_share_only_kafka_and_the_registry(  # type: ignore[no-untyped-def]
        catalog, vllm_url: str, tiny_model: str, registry: Registry, tmp_path: Path) -> None:
    """The whole path with no shared disk: the trainer (its home) trains, puts the candidate into the registry
    and has the gateway stage it for the gate (inference downloads and checks it into its own home); the version
    it announces is downloaded and served by the lifecycle in inference's home."""
    from pydantic import SecretStr

    from inference.lifecycle import AdapterManager
    from inference.routing import AdapterRouter, served_name
    from inference.vllm_api import VllmApi
    from tests.helpers import running
    from tests.trainer.support import TOPICS, inline, outcome, register_demo_tools, request
    from topics.producer import EventProducer
    from trainer.train import TrainConfig
    from trainer.worker import TrainerWorker

    shared = catalog(*TOPICS, "company_adapters").model_copy(update={
        "vllm_url": vllm_url, "base_model": tiny_model, "adapter_registry_url": registry.url,
        "adapter_registry_token": SecretStr(TOKEN)})
    inference = shared.model_copy(update={"home": tmp_path / "inference"})
    gateway = gateway_server(inference)
    trainer = shared.model_copy(update={"home": tmp_path / "trainer", "inference_url": gateway.url})
    try:
        company = f"acme{uuid.uuid4().hex[:6]}"
        register_demo_tools(trainer, company)
        asked = request(trainer, company, inline(120), max_steps=20, force=True)
        with running(TrainerWorker(trainer, TrainConfig(max_steps=20)).run, "trainer"):
            ready = outcome(trainer, asked, 600)
        assert ready.type == "lora_adapter_ready", ready.to_json()
        assert ready["uri"].startswith(f"{registry.url}/v1/adapters/")
        assert {"exact_match", "baseline_exact_match"} <= set(dict(ready["metrics"]))  # gated through the gateway
        staged = list((tmp_path / "inference" / "adapters" / company).glob("sha256-*"))
        assert staged, "the candidate was not staged in inference's own home"
        assert not [m for m in VllmApi(vllm_url).models() if m.startswith("eval-") and company in m]  # dropped after
        # a name of another company, a URI of another registry: refused, nothing loaded
        for body in ({"company_id": company, "name": "eval-other-0123abcd", "uri": ready["uri"]},
                     {"company_id": company, "name": f"eval-{company}-0123abcd",
                      "uri": f"http://127.0.0.1:1/v1/adapters/{'0' * 64}"}):
            refused = httpx.post(f"{gateway.url}/v1/candidates", json=body, timeout=30)
            assert refused.status_code == 422, refused.text
        assert "eval-other-0123abcd" not in VllmApi(vllm_url).models()
        manager = AdapterManager(inference, VllmApi(vllm_url), AdapterRouter(), EventProducer(inference))
        assert manager.handle_ready(ready).type == "adapter_activated"
        assert VllmApi(vllm_url).complete(served_name(company), "Task: bill c222 for 5\nCall:", 8).text is not None
    finally:
        gateway.stop()
