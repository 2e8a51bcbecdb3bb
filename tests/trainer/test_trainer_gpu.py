"""QLoRA where CUDA exists: a few 4-bit NF4 steps on the tiny base produce a servable adapter and a checkpoint
that resumes. Skipped without CUDA (the CPU path, LoRA and the QLoRA refusal, is tested elsewhere)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu
torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("QLoRA needs CUDA, and this machine has none", allow_module_level=True)
pytest.importorskip("bitsandbytes")


def test_a_short_qlora_run_trains_resumes_and_saves_a_servable_adapter(tmp_path: Path) -> None:
    from inference.adapter_files import SERVED_MODULES
    from trainer.synthetic import DEMO_TOOLS, demo_examples
    from trainer.tiny_model import build
    from trainer.train import TrainConfig, train_adapter

    base = str(build(tmp_path / "tiny", pretrain_steps=0))
    config = TrainConfig(method="QLORA", allow_fallback=False, max_steps=4, checkpoint_every=2, batch_size=4, rank=8)
    examples, tools = demo_examples(16), list(DEMO_TOOLS)
    first = train_adapter(base, examples, tools, config, tmp_path / "work")
    assert first.method == "QLORA" and first.steps == 4 and first.final_loss == first.final_loss  # not NaN
    saved = json.loads((first.adapter_dir / "adapter_config.json").read_text())
    assert saved["r"] == 8 and saved["base_model_name_or_path"] == base
    assert set(saved["target_modules"]) <= set(SERVED_MODULES)
    assert (first.adapter_dir / "adapter_model.safetensors").stat().st_size > 0
    resumed = train_adapter(base, examples, tools, TrainConfig(**{**config.__dict__, "max_steps": 6}), tmp_path / "work")
    assert resumed.resumed_from == 2 and resumed.steps == 6  # from the last checkpoint (step 2 of the first run)


def test_the_cuda_build_of_vllm_serves_the_tiny_base_and_a_runtime_adapter(tmp_path: Path) -> None:
    """The same `VllmServer` command on CUDA: the base answers a guided call and an adapter loaded at runtime
    answers under its own name. Skipped where vLLM is not installed (the lent GPU machines here cannot carry
    its 290 MiB CUDA wheel, so this has not run here yet; see scripts/gpu_check.sh)."""
    pytest.importorskip("vllm")
    from core.prompts import call_schema, parse_call, render_prompt
    from core.settings import Settings
    from inference.random_adapter import make_adapter
    from inference.server import VllmServer
    from inference.vllm_api import VllmApi
    from tests.helpers import free_port
    from trainer.synthetic import DEMO_TOOLS, demo_examples
    from trainer.tiny_model import build

    base = str(build(tmp_path / "tiny"))
    settings = Settings(home=tmp_path / "home", base_model=base, vllm_url=f"http://127.0.0.1:{free_port()}")
    server = VllmServer(settings)
    server.start()
    try:
        api = VllmApi(settings.vllm_url)
        assert api.load_adapter("gpu-a", str(make_adapter(base, tmp_path / "a", seed=1)), inplace=True).status_code == 200
        example, tools = demo_examples(1)[0], list(DEMO_TOOLS)
        import httpx

        for model in (settings.served_base_name, "gpu-a"):
            answer = httpx.post(f"{settings.vllm_url}/v1/completions", timeout=120, json={
                "model": model, "prompt": render_prompt(example.task, example.payload_json, tools), "max_tokens": 96,
                "temperature": 0, "structured_outputs": {"json": call_schema(tools)}})
            assert answer.status_code == 200, answer.text
            assert parse_call(answer.json()["choices"][0]["text"]) is not None
    finally:
        server.stop()
