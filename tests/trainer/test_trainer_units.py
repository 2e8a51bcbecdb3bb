"""Trainer logic without a broker: prompt format, dataset checks, registry atomicity, QLoRA refusal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from core.paths import UnsafePath
from core.prompts import call_schema, parse_call, render_prompt, render_target
from core.settings import Settings
from topics.events import Event
from trainer.dataset import BadData, build_dataset, in_eval
from trainer.examples import Example
from trainer.registry import LocalAdapterRegistry, UnknownVersion, content_version
from trainer.synthetic import DEMO_TOOLS, demo_examples

TOOLS = list(DEMO_TOOLS)


def test_prompt_and_target_are_the_serving_format() -> None:
    example = demo_examples(1, seed=3)[0]
    prompt = render_prompt(example.task, example.payload_json, TOOLS)
    assert prompt.startswith("Tools:\n- kr_sync(ref:string, zip:string) - Acme endpoint 9")
    data = json.dumps(json.loads(example.payload_json), separators=(",", ":"), sort_keys=True)
    assert prompt.endswith(f"Task: {example.task}\nData: {data}\nCall: ")
    target = render_target(example.tool_name, example.arguments)
    assert parse_call(target) == (example.tool_name, example.arguments)
    assert target == json.dumps({"tool": example.tool_name, "arguments": example.arguments},
                                      separators=(",", ":"), sort_keys=False)  # compact, as guided decoding emits
    schema = call_schema(TOOLS)
    assert [b["properties"]["tool"]["const"] for b in schema["anyOf"]] == ["kr_sync", "qv_file", "zx_post", "none"]
    later = call_schema(TOOLS, first_step=False)  # after a call: `done` instead of `none`
    assert [b["properties"]["tool"]["const"] for b in later["anyOf"]] == ["kr_sync", "qv_file", "zx_post", "done"]


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
    with pytest.raises(UnknownVersion, match="no adapter version"):
        registry.get("acme", "0000")
    # which version is active is inference's word (adapter_activated), not a file of the registry's
    assert not hasattr(registry, "activate") and not hasattr(registry, "rollback")
    assert sorted(os.listdir(tmp_path / "registry" / "acme")) == sorted([".staging-deadbeef", first.version, second.version])


def test_registry_paths_never_leave_the_registry(tmp_path: Path) -> None:
    root = tmp_path / "home" / "adapters"
    (tmp_path / "home" / "keep.txt").parent.mkdir(parents=True)
    (tmp_path / "home" / "keep.txt").write_text("precious")
    registry = LocalAdapterRegistry(root)
    for company, version in (("..", "v"), ("../..", "v"), ("acme", "../../keep.txt"), ("acme/../..", "v"), ("acme", "..")):
        with pytest.raises(UnsafePath):
            registry.get(company, version)
    with pytest.raises(UnsafePath):
        registry.publish("../..", _adapter(tmp_path / "a", b"x"), {})
    with pytest.raises(UnsafePath):
        registry.list("../../..")
    assert (tmp_path / "home" / "keep.txt").read_text() == "precious" and not root.exists()


def test_versions_and_checkpoints_are_on_disk_before_their_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file of a version (and of a checkpoint) is fsynced before the rename that makes it visible."""
    synced: set[Path] = set()
    renamed: list[tuple[Path, set[Path]]] = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd: int) -> None:
        synced.add(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def rename(src: os.PathLike[str] | str, dst: os.PathLike[str] | str) -> None:
        renamed.append((Path(src), {p for p in Path(src).rglob("*") if p.is_file()} if Path(src).is_dir() else set()))
        real_rename(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    registry = LocalAdapterRegistry(tmp_path / "registry")
    meta = {"base_model": "tiny", "rank": 8, "dataset_hash": "d", "request_id": "r1", "metrics": {}}
    registry.publish("acme", _adapter(tmp_path / "a1", b"one"), meta)
    staging = [(src, files) for src, files in renamed if src.name.startswith(".staging-")]
    assert staging and all(files and files <= synced for _, files in staging), (renamed, synced)

    pytest.importorskip("peft")
    from trainer.tiny_model import build
    from trainer.train import TrainConfig, train_adapter

    base = str(build(tmp_path / "tiny", pretrain_steps=0))  # random weights: only the files matter here
    renamed.clear()
    train_adapter(base, demo_examples(8), TOOLS, TrainConfig(max_steps=2, checkpoint_every=1, batch_size=2, rank=2),
                  tmp_path / "work")
    checkpoints = [(src, files) for src, files in renamed if src.name.startswith(".checkpoint-") and files]
    assert checkpoints and all(files <= synced for _, files in checkpoints), (renamed, synced)


def test_request_bounds_name_the_field(tmp_path: Path) -> None:
    from trainer.errors import BadRequest
    from trainer.requests import config_from
    from trainer.train import TrainConfig

    settings = Settings(home=tmp_path, trainer_max_steps=1000, trainer_max_learning_rate=0.01, vllm_max_lora_rank=16)

    def request(**fields: object) -> Event:
        return Event.new("lora_training_requested", "acme", request_id="r1", base_model="b", source="INLINE", **fields)

    assert config_from(request(max_steps=1000, learning_rate=0.01, rank=16), TrainConfig(), settings).max_steps == 1000
    assert config_from(request(), TrainConfig(max_steps=7), settings).max_steps == 7
    for fields, named in (({"max_steps": 1001}, "max_steps"), ({"learning_rate": 0.5}, "learning_rate"),
                          ({"learning_rate": 1e-8}, "learning_rate"), ({"rank": 64}, "rank")):
        with pytest.raises(BadRequest, match=named) as info:
            config_from(request(**fields), TrainConfig(), settings)
        assert info.value.field == named


def test_one_worker_per_request_folder(tmp_path: Path) -> None:
    """The work folder's lock: a second holder is refused at once (transient, so nothing is committed)."""
    from core.errors import is_transient
    from trainer.errors import RequestBusy
    from trainer.requests import exclusive

    lock = tmp_path / "work" / "acme" / "r1.lock"
    with exclusive(lock):
        with pytest.raises(RequestBusy) as info:
            with exclusive(lock):
                pass
        assert is_transient(info.value)
    assert not lock.exists()
    with exclusive(lock):  # free again once released
        pass


def test_evaluation_outage_is_transient_not_a_verdict() -> None:
    """A vLLM that does not answer makes evaluation raise InferenceUnavailable (retry later), not raw httpx errors."""
    from core.errors import is_transient
    from core.retry import RetryPolicy
    from inference.errors import InferenceUnavailable
    from tests.helpers import free_port
    from trainer.evaluate import evaluate

    example = demo_examples(1)[0]
    with pytest.raises(InferenceUnavailable) as info:
        evaluate(f"http://127.0.0.1:{free_port()}", "base", [example], TOOLS,
                 policy=RetryPolicy(attempts=2, deadline_s=2.0, backoff_s=0.05))
    assert is_transient(info.value)


def test_examples_too_large_for_a_record_are_stored_by_content(tmp_path: Path) -> None:
    from trainer.errors import BadRequest
    from trainer.examples_store import load_examples, store_examples

    settings = Settings(home=tmp_path / "home")
    rows = [{"task": f"t{i}", "payload_json": "{}", "tool_name": "zx_post", "arguments_json": "{}"} for i in range(3)]
    ref = store_examples(settings, "acme", rows, "r1")
    assert store_examples(settings, "acme", rows, "r1") == ref and load_examples(settings, "acme", ref) == rows
    with pytest.raises(BadRequest, match="examples_ref"):
        load_examples(settings, "globex", ref)  # another company's examples are not this one's
    for bad in ("../../../etc/passwd", "..", "a/b"):
        with pytest.raises(BadRequest, match="examples_ref"):
            load_examples(settings, "acme", bad)
    path = tmp_path / "home" / "trainer" / "examples" / "acme" / f"{ref}.jsonl"
    path.write_text(path.read_text().replace("t1", "t9"))
    with pytest.raises(BadRequest, match="changed"):
        load_examples(settings, "acme", ref)


def test_a_stored_examples_file_goes_once_no_request_holds_it(tmp_path: Path) -> None:
    from trainer.examples_store import load_examples, release_examples, store_examples

    settings = Settings(home=tmp_path / "home")
    rows = [{"task": "t", "payload_json": "{}", "tool_name": "zx_post", "arguments_json": "{}"}]
    ref = store_examples(settings, "acme", rows, "first")
    assert store_examples(settings, "acme", rows, "second") == ref  # the same contents, held twice
    assert not release_examples(settings, "acme", ref, "first")  # "second" still needs it
    assert load_examples(settings, "acme", ref) == rows
    assert release_examples(settings, "acme", ref, "second")  # the last hold gone: so is the file
    assert not (tmp_path / "home" / "trainer" / "examples" / "acme" / f"{ref}.jsonl").exists()
    assert not release_examples(settings, "acme", ref, "second")  # released twice: nothing more to do
    assert not release_examples(settings, "acme", "../x", "y")


def test_the_gate() -> None:
    from trainer.gate import beats

    assert beats({"exact_match": 0.5}, {"exact_match": 0.4})
    assert not beats({"exact_match": 0.4}, {"exact_match": 0.4}) and not beats({"exact_match": 0.1}, {"exact_match": 0.4})


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


def test_values_come_in_every_kind_and_exactly_the_length_asked() -> None:
    import random

    from trainer import values

    rng = random.Random(0)
    for _ in range(50):
        for length in values.KINDS["digits"].lengths:
            drawn = values.draw(rng, "digits", length)
            assert isinstance(drawn, str) and len(drawn) == length and drawn.isdigit()
        assert len(str(values.draw(rng, "name", 3)).split()) == 3
        amount = values.draw(rng, "amount", 4)
        assert isinstance(amount, int | float) and 1000 <= amount < 10_000 and round(amount, 2) == amount
        assert str(values.draw(rng, "date"))[4] == "-"


def test_benchmark_companies_are_fixed_hard_and_apart_from_the_pretraining_world() -> None:
    """Same tools and tasks on every machine; 6-8 tools whose argument names overlap; long values; none of
    their tools or examples is something generic_world draws (the base never saw them)."""
    from trainer.synthetic import BENCH_COMPANIES, bench_company, generic_world

    pretraining = {e.content_hash for seed in range(300) for e in generic_world(seed, 16).examples}
    for name in BENCH_COMPANIES:
        company = bench_company(name)
        assert company.specs == bench_company(name).specs and company.examples(5, "x") == bench_company(name).examples(5, "x")
        assert 6 <= len(company.tools) <= 8
        names = [a for t in company.specs for a in t.parameters["properties"]]
        assert len(names) > len(set(names)), "argument names shared across tools"
        examples = company.examples(200, "train")
        assert not pretraining & {e.content_hash for e in examples}
        dataset = build_dataset(examples, list(company.specs), min_train=1, min_eval=0)
        assert sum(dataset.rejected.get(k, 0) for k in ("unknown_tool", "arguments_fail_tool_schema")) == 0
        longest = max(len(str(v)) for e in examples for v in e.arguments.values())
        assert longest >= 12


def test_training_defaults_follow_the_size_of_the_data() -> None:
    from trainer.train import fitted_config

    small, usual, large = fitted_config(60), fitted_config(640), fitted_config(50_000, max_rank=8)
    assert (small.max_steps, small.rank) == (200, 8) and small.learning_rate < usual.learning_rate
    assert (usual.max_steps, usual.rank, usual.learning_rate) == (1280, 16, 2e-3)  # 32 passes of 16
    assert large.max_steps == 1500 and large.rank == 8  # capped by the steps bound and the server's rank
