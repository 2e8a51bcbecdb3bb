"""Pretrains the tiny base on a generic world of tool calls: the prompt format, choosing the tool a task
names, and copying values from the data into the arguments. What no base can know — a company's own
conventions — is left for that company's adapter to learn (see `trainer.synthetic`)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from trainer.synthetic import generic_world
from trainer.train import encode


def pretrain(model_dir: Path, steps: int = 1000, batch_size: int = 32, learning_rate: float = 3e-3, worlds: int = 400,
             seed: int = 0, progress: Callable[[int, float], None] | None = None) -> float:
    """Full-parameter training of the model in `model_dir`, saved back in place; returns the final loss."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    data = [encode(tokenizer, e, list(w.tools), 512)
            for w in (generic_world(seed * 100_000 + i, 25) for i in range(worlds)) for e in w.examples]
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 50) * max(0.1, 1 - s / steps))
    rng = random.Random(seed)
    pad = tokenizer.pad_token_id
    model.train()
    loss_value = float("nan")
    for step in range(1, steps + 1):
        batch = rng.sample(data, batch_size)
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
