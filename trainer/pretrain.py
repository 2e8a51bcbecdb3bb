"""Pretrains the tiny base on a generic world of tool calls: the prompt format, choosing the tool a task
names, and copying values from the data into the arguments. What no base can know — a company's own
conventions — is left for that company's adapter to learn (see `trainer.synthetic`)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from trainer.synthetic import generic_world
from trainer.train import encode, lr_factor, training_step


def pretrain(model_dir: Path, steps: int = 1000, batch_size: int = 32, learning_rate: float = 3e-3,
             seed: int = 0, progress: Callable[[int, float], None] | None = None) -> float:
    """Full-parameter training of the model in `model_dir`, saved back in place; returns the final loss.

    Every example is fresh (about one pass over as many worlds as the steps need): a model that sees the same
    ids twice learns them by heart instead of learning to copy them, and copying is what adapters build on."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    per_world = 16
    worlds = (steps * batch_size) // per_world + 1
    data = [encode(tokenizer, e, list(w.tools), 512)
            for w in (generic_world(seed * 1_000_000 + i, per_world) for i in range(worlds)) for e in w.examples]
    random.Random(seed).shuffle(data)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    model.train()
    loss_value = float("nan")
    for step in range(1, steps + 1):
        batch = data[(step - 1) * batch_size:step * batch_size]
        loss_value = training_step(model, optimizer, batch, tokenizer.pad_token_id,
                                   learning_rate * lr_factor(step, steps, warmup=50))
        if progress is not None and (step % 50 == 0 or step == steps):
            progress(step, loss_value)
    model.save_pretrained(model_dir, safe_serialization=True)
    return loss_value
