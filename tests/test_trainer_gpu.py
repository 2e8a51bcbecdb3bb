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
