"""Inference logic without a server: adapter checks, tool-call validation, routing, request validation."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from inference.adapter_files import inspect_adapter
from inference.errors import AdapterInvalid
from inference.tool_calls import parse_tool_call

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


def _fake_adapter(folder: Path, base: str, rank: int = 8, **extra: object) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": rank, "base_model_name_or_path": base,
                                                            "target_modules": ["q_proj"], **extra}))
    from safetensors.numpy import save_file
    import numpy as np

    save_file({"w": np.zeros((2, 2), dtype=np.float32)}, str(folder / "adapter_model.safetensors"))
    return folder


def test_adapter_checks_name_the_reason(tmp_path: Path) -> None:
    pytest.importorskip("safetensors")
    base = str(tmp_path / "base")
    Path(base).mkdir()
    assert inspect_adapter(_fake_adapter(tmp_path / "ok", base), base, 16).rank == 8
    served = _fake_adapter(tmp_path / "head", base, target_modules=["q_proj", "lm_head"])
    assert inspect_adapter(served, base, 16).target_modules == ("q_proj", "lm_head")
    corrupt = _fake_adapter(tmp_path / "corrupt", base)
    weights = corrupt / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4])
    cases = [
        ("rank_too_large", _fake_adapter(tmp_path / "big", base, rank=32)),
        ("wrong_base_model", _fake_adapter(tmp_path / "other", "/models/other")),
        ("unservable", _fake_adapter(tmp_path / "mts", base, modules_to_save=["lm_head"])),
        ("unservable", _fake_adapter(tmp_path / "emb", base, target_modules=["q_proj", "embed_tokens"])),
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
