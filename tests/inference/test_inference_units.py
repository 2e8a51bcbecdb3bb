"""Inference logic without a server: adapter checks, tool-call validation, routing, request validation."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from inference.adapter_files import inspect_adapter
from inference.errors import AdapterInvalid
from inference.tool_calls import parse_tool_call
from tests.helpers import fake_adapter

SCHEMA = {"type": "object", "properties": {"action": {"enum": ["create", "delete"]},
                                            "count": {"type": "integer", "minimum": 0, "maximum": 9}},
          "required": ["action", "count"], "additionalProperties": False}


def test_valid_tool_call_parses() -> None:
    outcome = parse_tool_call('{"action":"create","count":3}', SCHEMA)
    assert outcome.valid and outcome.arguments == {"action": "create", "count": 3}


@pytest.mark.parametrize(
    ("text", "finish", "error"),
    [
        ('{"action":"cre', "length", "cut off by the token limit"),
        ('{"action":"create"}', "stop", "'count' is a required property"),
        ('{"action":"create","count":12}', "stop", "at count"),
        ('[1, 2]', "stop", "not of type 'object'"),
    ],
)
def test_invalid_tool_calls_are_explained(text: str, finish: str, error: str) -> None:
    outcome = parse_tool_call(text, SCHEMA, finish)
    assert not outcome.valid and outcome.arguments is None
    assert error in (outcome.error or "")


def test_adapter_checks_name_the_reason(tmp_path: Path) -> None:
    pytest.importorskip("safetensors")
    base = str(tmp_path / "base")
    Path(base).mkdir()
    assert inspect_adapter(fake_adapter(tmp_path / "ok", base), base, 16).rank == 8
    served = fake_adapter(tmp_path / "head", base, target_modules=["q_proj", "lm_head"])
    assert inspect_adapter(served, base, 16).target_modules == ("q_proj", "lm_head")
    corrupt = fake_adapter(tmp_path / "corrupt", base)
    weights = corrupt / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4])
    cases = [
        ("rank_too_large", fake_adapter(tmp_path / "big", base, rank=32)),
        ("wrong_base_model", fake_adapter(tmp_path / "other", "/models/other")),
        ("unservable", fake_adapter(tmp_path / "mts", base, modules_to_save=["lm_head"])),
        ("unservable", fake_adapter(tmp_path / "emb", base, target_modules=["q_proj", "embed_tokens"])),
        ("missing_files", tmp_path / "nothing"),
        ("corrupt_files", corrupt),
    ]
    for kind, folder in cases:
        with pytest.raises(AdapterInvalid) as info:
            inspect_adapter(folder, base, 16)
        assert info.value.kind == kind, (kind, str(info.value))


def test_gateway_rejects_bad_requests_naming_the_field() -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from inference.gateway import GatewayState, create_app
    from inference.routing import AdapterRouter
    from inference.vllm_api import AsyncVllmApi

    app = create_app(GatewayState(AdapterRouter(), AsyncVllmApi("http://127.0.0.1:9"), "base"))
    client = TestClient(app)
    bad_company = client.post("/v1/complete", json={"company_id": "a b", "prompt": "x"})
    assert bad_company.status_code == 422 and bad_company.json()["detail"][0]["loc"] == ["body", "company_id"]
    bad_schema = client.post("/v1/complete", json={"company_id": "a", "prompt": "x", "json_schema": {"type": 5}})
    assert bad_schema.status_code == 422 and bad_schema.json()["detail"][0]["loc"] == ["body", "json_schema"]
    down = client.post("/v1/complete", json={"company_id": "a", "prompt": "x"})
    assert down.status_code == 503 and "127.0.0.1:9" in down.json()["detail"]
    assert client.get("/health/ready").status_code == 503
    assert httpx.codes.OK == client.get("/health/live").status_code


@pytest.mark.parametrize("config", [
    {"r": "eight", "base_model_name_or_path": "BASE", "target_modules": ["q_proj"]},
    {"r": 8, "base_model_name_or_path": 42, "target_modules": ["q_proj"]},
    {"r": 8, "base_model_name_or_path": "BASE", "target_modules": 5},
    ["not", "an", "object"],
])
def test_a_bad_adapter_config_is_a_refusal_not_a_crash(tmp_path: Path, config: object) -> None:
    """Before: `int("eight")` or `[].get` escaped as ValueError/AttributeError and killed the lifecycle."""
    pytest.importorskip("safetensors")
    base = tmp_path / "base"
    base.mkdir()
    folder = fake_adapter(tmp_path / "adapter", str(base))
    (folder / "adapter_config.json").write_text(json.dumps(config).replace("BASE", str(base)))
    with pytest.raises(AdapterInvalid) as info:
        inspect_adapter(folder, str(base), 16)
    assert info.value.kind == "corrupt_files"


def test_an_adapter_uri_must_lie_in_the_registry_folder_of_its_company(tmp_path: Path) -> None:
    from core.settings import Settings
    from inference.adapter_places import company_adapter_dir, registry_root

    settings = Settings(home=tmp_path / "home")
    acme_v1 = registry_root(settings) / "acme" / "v1"
    acme_v1.mkdir(parents=True)
    (registry_root(settings) / "globex").mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    assert company_adapter_dir(settings, "acme", f"file://{acme_v1}") == acme_v1.resolve()
    assert company_adapter_dir(settings, "acme", str(acme_v1)) == acme_v1.resolve()
    (registry_root(settings) / "globex" / "stolen").symlink_to(acme_v1)  # a link into another company
    foreign = [
        ("globex", f"file://{acme_v1}"),  # B announcing A's files
        ("globex", f"file://{registry_root(settings) / 'globex' / 'stolen'}"),
        ("globex", f"file://{registry_root(settings) / 'globex' / '..' / 'acme' / 'v1'}"),
        ("acme", f"file://{outside}"),
        ("acme", f"file://{registry_root(settings) / 'acme'}"),  # the company folder itself is no version
        ("acme", "adapters/acme/v1"),  # relative: depends on the working directory
        ("acme", f"https://example.com/{acme_v1}"),
        ("..", f"file://{acme_v1}"),
    ]
    for company, uri in foreign:
        with pytest.raises(AdapterInvalid) as info:
            company_adapter_dir(settings, company, uri)
        assert info.value.kind == "foreign_uri", (company, uri)


def _gateway_with(listed: list[str], workers: list[object] | None = None):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from inference.gateway import GatewayState, create_app
    from inference.routing import ActiveAdapter, AdapterRouter, served_name
    from inference.vllm_api import AsyncVllmApi

    async def vllm(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [{"id": name} for name in listed]})

    router = AdapterRouter()
    router.set(ActiveAdapter("acme", "v1", served_name("acme"), "file:///a", "base", 8))
    state = GatewayState(router, AsyncVllmApi("http://vllm", transport=httpx.MockTransport(vllm)), "base")
    state.restored = True
    state.workers = workers or []  # type: ignore[assignment]
    return TestClient(create_app(state))


def test_readiness_is_false_while_vllm_does_not_list_an_active_adapter() -> None:
    """A restarted vLLM answers but forgot its runtime adapters: not ready until they are back."""
    pytest.importorskip("fastapi")
    forgot = _gateway_with(["base"]).get("/health/ready")
    assert forgot.status_code == 503 and forgot.json()["missing_adapters"] == ["acme@lora"]
    assert _gateway_with(["base", "acme@lora"]).get("/health/ready").status_code == 200


def test_readiness_is_false_when_a_worker_thread_died() -> None:
    pytest.importorskip("fastapi")
    import threading

    from core.workers import WorkerThread

    def lifecycle(stop: threading.Event) -> None:
        raise KeyError("a bug")

    dead = WorkerThread("adapter-lifecycle", lifecycle, threading.Event()).start()
    dead.join(5)
    alive_stop = threading.Event()
    alive = WorkerThread("vllm-supervisor", lambda stop: stop.wait(), alive_stop).start()
    try:
        answer = _gateway_with(["base", "acme@lora"], [dead, alive]).get("/health/ready")
        assert answer.status_code == 503
        assert answer.json()["workers"] == {"adapter-lifecycle": False, "vllm-supervisor": True}
        assert _gateway_with(["base", "acme@lora"], [alive]).get("/health/ready").status_code == 200
    finally:
        alive_stop.set()


def test_staging_names_are_told_from_served_and_trainer_names() -> None:
    from inference.routing import is_staging_name, served_name, staging_name

    assert is_staging_name(staging_name("acme", "3f2a9c"))
    assert not any(is_staging_name(n) for n in (served_name("acme"), "base", "eval-acme-1a2b3c4d"))


def test_sigterm_and_sigint_become_a_clean_exit_that_runs_finally_blocks() -> None:
    import os
    import signal

    from core.signals import exit_on_signals

    for sig in (signal.SIGTERM, signal.SIGINT):
        cleaned = []
        with pytest.raises(SystemExit) as info:
            with exit_on_signals():
                try:
                    os.kill(os.getpid(), sig)
                    for _ in range(1000):  # the handler runs at the next bytecode boundary, here in the block
                        pass
                finally:
                    cleaned.append(sig)
        assert info.value.code == 128 + sig and cleaned == [sig]
