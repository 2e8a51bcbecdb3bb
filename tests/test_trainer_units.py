"""Trainer logic without a broker: prompt format, dataset checks, registry atomicity, QLoRA refusal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from trainer.dataset import BadData, build_dataset, in_eval
from cda.prompts import call_schema, parse_call, render_prompt, render_target
from trainer.examples import Example
from trainer.registry import LocalAdapterRegistry, content_version
from trainer.synthetic import DEMO_TOOLS, demo_examples

TOOLS = list(DEMO_TOOLS)


def test_prompt_and_target_are_the_serving_format() -> None:
    example = demo_examples(1, seed=3)[0]
    prompt = render_prompt(example.task, example.payload_json, TOOLS)
    assert prompt.startswith("Tools:\n- kr_sync(ref:string, zip:string) - Acme endpoint 9")
    assert prompt.endswith(f"Task: {example.task}\nData: {json.dumps(json.loads(example.payload_json), separators=(',', ':'), sort_keys=True)}\nCall: ")
    target = render_target(example.tool_name, example.arguments)
    assert parse_call(target) == (example.tool_name, example.arguments)
    assert target == json.dumps({"tool": example.tool_name, "arguments": example.arguments},
                                      separators=(",", ":"), sort_keys=False)  # compact, as guided decoding emits
    schema = call_schema(TOOLS)
    assert [b["properties"]["tool"]["const"] for b in schema["anyOf"]] == ["kr_sync", "qv_file", "zx_post"]


def test_dataset_counts_each_rejection_reason() -> None:
    good = demo_examples(40)
    bad = [
        Example("t", "{}", "no_such_tool", {}),
        Example("t", "{not json", "zx_post", {"ref": "ACME-c1", "cents": 1}),
        Example("t", "{}", "zx_post", {"ref": "c1", "cents": 1}),  # fails the pattern
        Example("t", "{}", "zx_post", {"ref": "ACME-c1"}),  # missing cents
        good[0],  # duplicate
    ]
    dataset = build_dataset(good + bad, TOOLS)
    assert dataset.rejected == {"unknown_tool": 1, "invalid_payload_json": 1, "arguments_fail_tool_schema": 2, "duplicate": 1}
    assert len(dataset.train) + len(dataset.eval) == len({e.content_hash for e in good})
    assert all(in_eval(e) for e in dataset.eval) and not any(in_eval(e) for e in dataset.train)
    assert build_dataset(list(reversed(good)), TOOLS).content_hash == dataset.content_hash  # order does not matter


def test_too_little_data_is_refused_with_counts() -> None:
    with pytest.raises(BadData) as info:
        build_dataset(demo_examples(3) + [Example("t", "{}", "nope", {})], TOOLS)
    assert info.value.counts["unknown_tool"] == 1 and info.value.counts["too_few"] == 3
    with pytest.raises(BadData):
        build_dataset([], TOOLS)


def _adapter(folder: Path, content: bytes) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text('{"r": 8}')
    (folder / "adapter_model.safetensors").write_bytes(content)
    return folder


def test_registry_versions_are_content_addressed_and_published_whole(tmp_path: Path) -> None:
    registry = LocalAdapterRegistry(tmp_path / "registry")
    meta = {"base_model": "tiny", "rank": 8, "dataset_hash": "d", "request_id": "r1", "metrics": {"exact_match": 0.9}}
    first = registry.publish("acme", _adapter(tmp_path / "a1", b"one"), meta)
    assert first.version == content_version(tmp_path / "a1")
    assert registry.publish("acme", _adapter(tmp_path / "a1-again", b"one"), meta).version == first.version
    second = registry.publish("acme", _adapter(tmp_path / "a2", b"two"), {**meta, "request_id": "r2"})
    assert [v.version for v in registry.list("acme")] == [first.version, second.version]
    assert registry.find_by_request("acme", "r2") == second
    assert registry.list("globex") == []
    # a half-written publish (a crash before the rename) is never listed
    (tmp_path / "registry" / "acme" / ".staging-deadbeef").mkdir()
    assert len(registry.list("acme")) == 2
    assert registry.active("acme") is None
    registry.activate("acme", first.version)
    registry.activate("acme", second.version)
    assert registry.active("acme") == second
    assert registry.rollback("acme") == first and registry.active("acme") == first
    with pytest.raises(KeyError, match="no earlier active"):
        registry.rollback("acme")
    with pytest.raises(KeyError, match="no adapter version"):
        registry.get("acme", "0000")
    assert not any(name.startswith(".ACTIVE") for name in os.listdir(tmp_path / "registry" / "acme"))


def test_qlora_without_cuda_is_refused_or_falls_back() -> None:
    torch = pytest.importorskip("torch")
    from trainer.train import TrainConfig, TrainingRejected, resolve_method

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: QLoRA runs")
    with pytest.raises(TrainingRejected, match="QLoRA needs CUDA"):
        resolve_method(TrainConfig(method="QLORA", allow_fallback=False))
    assert resolve_method(TrainConfig(method="QLORA", allow_fallback=True)) == "LORA"
    with pytest.raises(ValueError, match="method"):
        TrainConfig(method="FULL")


def test_generic_worlds_are_valid_and_never_the_demo_company() -> None:
    """Pretraining data passes the same checks as company data, covers every kind of convention, and never
    contains acme's own tools or prefix (or the demo would measure memory of pretraining, not the adapter)."""
    from trainer.synthetic import generic_world

    demo_names = {t.name for t in DEMO_TOOLS}
    seen: set[str] = set()
    for seed in range(200):
        world = generic_world(seed, 16)
        assert 2 <= len(world.tools) <= 4 and not demo_names & {t.name for t in world.tools}
        dataset = build_dataset(list(world.examples), list(world.tools), min_train=1, min_eval=0)
        assert sum(dataset.rejected.get(k, 0) for k in ("unknown_tool", "arguments_fail_tool_schema")) == 0
        for example in world.examples:
            data = json.loads(example.payload_json)
            for name, value in example.arguments.items():
                if value in data.values():
                    seen.add("copied" if name in data else "renamed")
                elif isinstance(value, int):
                    seen.add("scaled")
                elif isinstance(value, str) and "-" in value and value.split("-", 1)[1] in data.values():
                    seen.add("prefixed")
                    assert not value.startswith("ACME-")
                else:
                    seen.add("coded")
    assert seen == {"copied", "renamed", "scaled", "prefixed", "coded"}
