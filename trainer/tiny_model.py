"""Builds the tiny Llama-style base model used by tests and the embedded default — locally, from nothing.

No model hub: a byte-level BPE tokenizer is trained on text made here (JSON tool calls, digits,
identifiers, and docstrings of Python's standard library), and a Llama config with a head size the CPU
attention kernels accept (64) gets seeded random weights. vLLM and PEFT both load the folder.
Real deployments point `CDA_BASE_MODEL` at a real model instead.
"""

from __future__ import annotations

import json
import os
import pydoc
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")
_STDLIB_MODULES = ("json", "collections", "itertools", "functools", "datetime", "pathlib", "re", "string",
                   "textwrap", "decimal", "statistics", "uuid", "csv", "http.client", "urllib.parse", "email.message")


@dataclass(frozen=True)
class TinyModelSpec:
    """Shape of the tiny model; head size is hidden_size / heads = 64, which vLLM's CPU kernels accept. Four
    layers of three heads: enough to copy a twelve-digit id or a four-word name in order, small enough that
    vLLM serves it and LoRA trains it on two CPU cores."""

    vocab_size: int = 2048
    hidden_size: int = 192
    intermediate_size: int = 512
    layers: int = 4
    heads: int = 3
    kv_heads: int = 3
    max_positions: int = 1024
    seed: int = 0


@dataclass(frozen=True)
class PretrainPlan:
    """How the base is pretrained (`trainer.pretrain`): part of the recipe, so a shipped base names it."""

    steps: int = 4000
    batch_size: int = 128
    learning_rate: float = 2e-3
    warmup: int = 200


@dataclass(frozen=True)
class ContextPlan:
    """The second pretraining stage (`trainer.pretrain`, world "context"), continuing from the first: half
    plain jobs, half jobs whose answer a note or an earlier result of the session decides (prompt version 2)."""

    steps: int = 3000
    batch_size: int = 128
    learning_rate: float = 1e-3
    warmup: int = 100
    seed: int = 1


# the context stages, in order, each a fresh schedule continuing from the weights the last one left
CONTEXT_STAGES: tuple[ContextPlan, ...] = (ContextPlan(), ContextPlan(steps=4000, seed=2))


def corpus(worlds: int = 2_000, seed: int = 0) -> Iterator[str]:
    """Local text for the tokenizer: prompts and calls of the pretraining world (seeds it never trains on),
    and standard-library docstrings for plain English."""
    from core.prompts import render_prompt, render_target
    from trainer.synthetic import generic_world

    for index in range(worlds):
        world = generic_world(-1 - index - seed * worlds, 4)
        for example in world.examples:
            yield render_prompt(example.task, example.payload_json, list(world.tools))
            yield render_target(example.tool_name, example.arguments)
    for name in _STDLIB_MODULES:
        module = pydoc.locate(name)
        if module is not None:
            yield from (pydoc.getdoc(getattr(module, attr, None)) for attr in dir(module) if not attr.startswith("_"))


def build_tokenizer(spec: TinyModelSpec) -> object:
    """A byte-level BPE tokenizer trained on `corpus()`, wrapped for transformers (and so for vLLM)."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    # digits one by one: ids, amounts and codes are then copied digit for digit, the same way in every context
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                       pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=spec.vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(corpus(seed=spec.seed), trainer=trainer)
    # a prompt starts with <s> wherever it is tokenized (vLLM's server too), as it did in training
    bos = tokenizer.token_to_id("<s>")
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", pad_token="<pad>", model_max_length=spec.max_positions)


MARKER = "cda_tiny.json"
# the default build everywhere (CLI, tests, benchmarks): one figure, so no caller rebuilds a different model
DEFAULT_PRETRAIN_STEPS = PretrainPlan().steps


# The default build, built once and shipped in the repository (it is small and deterministic): a fresh clone
# copies it instead of pretraining (an hour and more on two CPU cores, minutes on a GPU);
# `cda model init-tiny --force` rebuilds it by the recipe.
SHIPPED = Path(__file__).parent / "base" / "tiny"
MANIFEST = "manifest.json"
FIRST_STEPS = 3  # the recipe's first steps, whose losses the manifest records and a test re-runs


def recipe(spec: TinyModelSpec = TinyModelSpec(), pretrain_steps: int = DEFAULT_PRETRAIN_STEPS,
           context: tuple[ContextPlan, ...] = CONTEXT_STAGES) -> dict[str, object]:
    made: dict[str, object] = {"spec": spec.__dict__, "pretrain": PretrainPlan(steps=pretrain_steps).__dict__}
    if context and pretrain_steps:
        made["context"] = context[0].__dict__ if len(context) == 1 else [plan.__dict__ for plan in context]
    return made


def pretrain_context(folder: Path, plan: ContextPlan = ContextPlan(), workers: int = 0,
                     stop_after: int | None = None) -> list[float]:
    """The context stage on the model in `folder` (already through the generic stage)."""
    from trainer.pretrain import pretrain

    return pretrain(folder, steps=plan.steps, batch_size=plan.batch_size, learning_rate=plan.learning_rate,
                    warmup=plan.warmup, seed=plan.seed, stop_after=stop_after, workers=workers, world="context",
                    progress=None if stop_after else
                    lambda step, loss: print(f"context step {step}/{plan.steps} loss {loss:.3f}", flush=True))


def pretrain_by_recipe(folder: Path, spec: TinyModelSpec, pretrain_steps: int, stop_after: int | None = None,
                       workers: int = 0) -> list[float]:
    """Pretrain the model in `folder` by the recipe's plan (all of it, or its first `stop_after` steps)."""
    from trainer.pretrain import pretrain

    plan = PretrainPlan(steps=pretrain_steps)
    return pretrain(folder, steps=plan.steps, batch_size=plan.batch_size, learning_rate=plan.learning_rate,
                    warmup=plan.warmup, seed=spec.seed, stop_after=stop_after, workers=workers,
                    progress=None if stop_after else
                    lambda step, loss: print(f"pretraining step {step}/{plan.steps} loss {loss:.3f}", flush=True))


def sha256_of(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def shipped_manifest() -> dict[str, object] | None:
    path = SHIPPED / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def _copy_shipped(staging: Path, wanted: dict[str, object]) -> bool:
    """Copy the shipped base into `staging` when it was built by `wanted` and its files check out."""
    manifest = shipped_manifest()
    if manifest is None or manifest.get("recipe") != wanted:
        return False
    files: dict[str, str] = manifest["files"]  # type: ignore[assignment]
    if any(not (SHIPPED / name).is_file() or sha256_of(SHIPPED / name) != digest for name, digest in files.items()):
        return False
    staging.mkdir(parents=True)
    for name in files:
        shutil.copyfile(SHIPPED / name, staging / name)
    return True


def build(target: Path, spec: TinyModelSpec = TinyModelSpec(), force: bool = False,
          pretrain_steps: int = DEFAULT_PRETRAIN_STEPS) -> Path:
    """Write config, weights and tokenizer into `target`: a copy of the shipped base when it is this recipe,
    else built here — seeded random weights, pretrained on the generic tool-call world (`trainer.pretrain`)
    with `pretrain_steps`. Skipped when `target` already holds this build; `force` always builds by the recipe."""
    wanted = recipe(spec, pretrain_steps)
    marker = target / MARKER
    if not force and marker.exists() and json.loads(marker.read_text()) == wanted:
        return target
    staging = target.with_name(f".{target.name}.building")
    shutil.rmtree(staging, ignore_errors=True)
    if not force and _copy_shipped(staging, wanted):
        return _publish(staging, target, wanted)
    _write_random(staging, spec)
    if pretrain_steps:
        workers = min(8, (os.cpu_count() or 1) - 1)
        pretrain_by_recipe(staging, spec, pretrain_steps, workers=workers)
        for plan in CONTEXT_STAGES:
            pretrain_context(staging, plan, workers=workers)
    return _publish(staging, target, wanted)


def _publish(staging: Path, target: Path, wanted: dict[str, object]) -> Path:
    (staging / MARKER).write_text(json.dumps(wanted))
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staging, target)  # whole or not at all: vLLM never sees a half-built model
    return target


def first_losses(spec: TinyModelSpec = TinyModelSpec(), pretrain_steps: int = DEFAULT_PRETRAIN_STEPS,
                 steps: int = FIRST_STEPS) -> tuple[str, list[float]]:
    """The recipe's starting weights (their checksum) and the losses of its first pretraining steps."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        start = Path(folder) / "tiny"
        _write_random(start, spec)
        init = sha256_of(start / "model.safetensors")
        return init, pretrain_by_recipe(start, spec, pretrain_steps, stop_after=steps)


def ship(built: Path, spec: TinyModelSpec = TinyModelSpec(), pretrain_steps: int = DEFAULT_PRETRAIN_STEPS) -> Path:
    """Copy a base built by the recipe into the repository with its manifest (recipe, checksums, first losses)."""
    wanted = recipe(spec, pretrain_steps)
    if json.loads((built / MARKER).read_text()) != wanted:
        raise ValueError(f"{built} was not built by the default recipe {wanted}")
    names = sorted(p.name for p in built.iterdir() if p.is_file() and p.name != MARKER)
    shutil.rmtree(SHIPPED, ignore_errors=True)
    SHIPPED.mkdir(parents=True)
    for name in names:
        shutil.copyfile(built / name, SHIPPED / name)
    init, losses = first_losses(spec, pretrain_steps)
    manifest = {"recipe": wanted, "files": {n: sha256_of(SHIPPED / n) for n in names}, "init_sha256": init,
                "first_losses": losses}
    (SHIPPED / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return SHIPPED


def _write_random(target: Path, spec: TinyModelSpec) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(spec)
    torch.manual_seed(spec.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.layers, num_attention_heads=spec.heads, num_key_value_heads=spec.kv_heads,
        max_position_embeddings=spec.max_positions, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)


if __name__ == "__main__":  # python -m trainer.tiny_model [FOLDER] [--force] [--ship]
    folder = Path(next((a for a in sys.argv[1:] if not a.startswith("--")), ".cda/models/tiny"))
    built = build(folder, force="--force" in sys.argv)
    print(ship(built) if "--ship" in sys.argv else built)
