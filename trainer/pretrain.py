"""Pretrains the tiny base on a generic world of tool calls: the prompt format, choosing the tool a task
names, and copying values from the data into the arguments. What no base can know — a company's own
conventions — is left for that company's adapter to learn (see `trainer.synthetic`)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from trainer.synthetic import World, generic_world
from trainer.train import encode, lr_factor, training_step


def pretrain(model_dir: Path, steps: int = 1000, batch_size: int = 32, learning_rate: float = 3e-3,
             seed: int = 0, progress: Callable[[int, float], None] | None = None,
             stop_after: int | None = None) -> list[float]:
    """Full-parameter training of the model in `model_dir`, saved back in place; returns every step's loss.

    Every example is fresh (about one pass over as many worlds as the steps need): a model that sees the same
    ids twice learns them by heart instead of learning to copy them, and copying is what adapters build on.
    With `stop_after`, only the first steps of the same schedule run and nothing is saved: what a test needs to
    check that the recipe still reproduces a shipped base's first steps exactly."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    per_world = 16
    worlds = (steps * batch_size) // per_world + 1
    order = list(range(worlds * per_world))  # example i is example i % 16 of world i // 16
    random.Random(seed).shuffle(order)
    cache: dict[int, World] = {}

    def example(i: int) -> tuple[list[int], list[int]]:
        world = cache.get(i // per_world)
        if world is None:
            world = cache[i // per_world] = generic_world(seed * 1_000_000 + i // per_world, per_world)
        return encode(tokenizer, world.examples[i % per_world], list(world.tools), 512)

    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    model.train()
    losses: list[float] = []
    for step in range(1, (steps if stop_after is None else min(stop_after, steps)) + 1):
        batch = [example(i) for i in order[(step - 1) * batch_size:step * batch_size]]
        losses.append(training_step(model, optimizer, batch, tokenizer.pad_token_id,
                                    learning_rate * lr_factor(step, steps, warmup=50)))
        if progress is not None and (step % 50 == 0 or step == steps):
            progress(step, losses[-1])
    if stop_after is None:
        model.save_pretrained(model_dir, safe_serialization=True)
    return losses
