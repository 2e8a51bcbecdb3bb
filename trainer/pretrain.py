"""Pretrains the tiny base on a generic world of tool calls: the prompt format, choosing the tool a task
names, and copying values from the data into the arguments. What no base can know — a company's own
conventions — is left for that company's adapter to learn (see `trainer.synthetic`)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from trainer.synthetic import generic_world
from trainer.train import encode


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
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 50) * max(0.1, 1 - s / steps))
    pad = tokenizer.pad_token_id
    model.train()
    loss_value = float("nan")
    for step in range(1, steps + 1):
        batch = data[(step - 1) * batch_size:step * batch_size]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = float(loss.detach())
        if progress is not None and (step % 50 == 0 or step == steps):
            progress(step, loss_value)
    model.save_pretrained(model_dir, safe_serialization=True)
    return loss_value
