"""Pretrains the tiny base on a generic world of tool calls: the prompt format, choosing the tool a task
names, and copying values of every kind and length from the data into the arguments. What no base can know —
a company's own conventions — is left for that company's adapter to learn (see `trainer.synthetic`)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.prompts import ToolSpec
from trainer.examples import Example
from trainer.synthetic import generic_world
from trainer.train import encode, lr_factor, training_step

PER_WORLD = 16  # examples drawn from each random company of the world
WORLDS = ("generic", "context")  # what a stage pretrains on: plain jobs, or half plain and half in context
_CONTEXT_GENERIC_SEEDS = 10_000_000  # the context stage's plain jobs come from generic worlds stage one never saw


@dataclass(frozen=True)
class Schedule:
    """Which examples each step sees: every example is fresh (about one pass over as many worlds as the steps
    need), because a model that sees the same ids twice learns them by heart instead of learning to copy them.
    A pure function of (steps, batch size, seed), so the same step gets the same batch on any machine."""

    steps: int
    batch_size: int
    seed: int

    def order(self) -> list[int]:
        worlds = (self.steps * self.batch_size) // PER_WORLD + 1
        order = list(range(worlds * PER_WORLD))  # example i is example i % 16 of world i // 16
        random.Random(self.seed).shuffle(order)
        return order


_TOKENIZER: dict[str, Any] = {}


def example_of(world: str, seed: int, i: int) -> tuple[Example, list[ToolSpec]]:
    """Example `i` of a stage's world with the tools its prompt lists: in the context world, odd examples are
    jobs in context (`trainer.context_world`) and even ones plain jobs, so copying from the data stays learnt."""
    if world == "context" and i % 2:
        from trainer.context_world import context_situations

        found = context_situations(seed * 1_000_000 + i // PER_WORLD, PER_WORLD)[i % PER_WORLD]
        return found.example, list(found.tools)
    offset = _CONTEXT_GENERIC_SEEDS if world == "context" else 0
    plain = generic_world(offset + seed * 1_000_000 + i // PER_WORLD, PER_WORLD)
    return plain.examples[i % PER_WORLD], list(plain.tools)


def _batch(args: tuple[str, int, list[int], str]) -> list[tuple[list[int], list[int]]]:
    """The encoded examples of one step (run in worker processes when there are cores to spare)."""
    from transformers import AutoTokenizer

    model_dir, seed, indices, world = args
    tokenizer = _TOKENIZER.get(model_dir) or _TOKENIZER.setdefault(model_dir, AutoTokenizer.from_pretrained(model_dir))
    return [encode(tokenizer, *example_of(world, seed, i), 512) for i in indices]


def _batches(model_dir: Path, schedule: Schedule, last: int, workers: int,
             world: str) -> Iterator[list[tuple[list[int], list[int]]]]:
    order, size = schedule.order(), schedule.batch_size
    jobs = ((str(model_dir), schedule.seed, order[(step - 1) * size:step * size], world) for step in range(1, last + 1))
    if workers <= 1:
        yield from map(_batch, jobs)
        return
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(_batch, jobs, chunksize=4)  # in order: the schedule does not depend on the workers


def pretrain(model_dir: Path, steps: int = 1000, batch_size: int = 32, learning_rate: float = 3e-3,
             seed: int = 0, progress: Callable[[int, float], None] | None = None,
             stop_after: int | None = None, warmup: int = 50, workers: int = 0, world: str = "generic") -> list[float]:
    """Full-parameter training of the model in `model_dir`, saved back in place; returns every step's loss.
    `world` picks the stage: "generic" from starting weights, "context" continuing from the generic stage.

    Runs on CUDA when there is one (in full fp32, TF32 off, so its steps match the CPU's closely), else on the
    CPU. With `stop_after`, only the first steps of the same schedule run and nothing is saved: what a test
    needs to check that the recipe still reproduces a shipped base's first steps."""
    import torch
    from transformers import AutoModelForCausalLM

    if world not in WORLDS:
        raise ValueError(f"world must be one of {WORLDS}, not {world!r}")
    torch.manual_seed(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device)
    pad = model.config.pad_token_id
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    model.train()
    losses: list[float] = []
    last = steps if stop_after is None else min(stop_after, steps)
    for step, batch in enumerate(_batches(model_dir, Schedule(steps, batch_size, seed), last, workers, world), start=1):
        losses.append(training_step(model, optimizer, batch, pad, learning_rate * lr_factor(step, steps, warmup=warmup)))
        if progress is not None and (step % 50 == 0 or step == steps):
            progress(step, losses[-1])
    if stop_after is None:
        model.to("cpu").save_pretrained(model_dir, safe_serialization=True)
    return losses
