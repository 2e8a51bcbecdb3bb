"""Randomly initialised PEFT LoRA adapters for a base model: distinct, servable stand-ins for benchmarks
and tests of the serving path (trained adapters come from the trainer)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from core.paths import safe_join
from inference.adapter_files import SERVED_MODULES


def make_adapter(base_model: str, target: Path, seed: int, rank: int = 8, zero: bool = False) -> Path:
    """Write a rank-`rank` LoRA on every layer vLLM serves with seeded random A and B, scaled (alpha 8r) so it
    changes the greedy output of a base that answers most prompts with an end of sequence. `zero`: B is zero
    (PEFT's own init), so the adapter answers exactly as the base does, through the LoRA path."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_model)
    config = LoraConfig(r=rank, lora_alpha=8 * rank, target_modules=list(SERVED_MODULES), init_lora_weights=zero)
    get_peft_model(model, config).save_pretrained(target, save_embedding_layers=False)
    return target


def retarget(adapter: Path, base_model: str) -> None:
    """Rewrite which base model an adapter says it was trained on (to build a wrong-base adapter)."""
    config_path = adapter / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = base_model
    config_path.write_text(json.dumps(config))


def place_in_registry(registry: Path, company_id: str, version: str, adapter: Path) -> Path:
    """Copy an adapter to `<registry>/<company>/<version>/`, where the lifecycle accepts a company's files
    (the trainer's registry layout); returns the folder."""
    target = safe_join(registry, company_id, version)
    if not target.exists():
        shutil.copytree(adapter, target)
    return target
