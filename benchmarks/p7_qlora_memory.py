"""BENCH P7 (CUDA only): QLoRA peak GPU memory vs 16-bit LoRA on the same model (goal ratio <= 0.4).

    python benchmarks/p7_qlora_memory.py [--model PATH] [--steps 5] [--synthetic-size 1b]

Both methods train through `trainer.train.train_adapter` as shipped, on the same examples, steps and batch:
LoRA on bf16 weights, QLoRA on 4-bit NF4 weights (which `prepare_model_for_kbit_training` also gives gradient
checkpointing and float32 norms, embeddings and head). `*_load_gib` is the memory of the loaded model alone.
On the tiny base (4.5 MB) activations and CUDA overheads dominate and the ratio says little about QLoRA, so
`--synthetic-size` also measures a randomly initialised Llama-style model of a real model's shape, built from
its config on the device (no download) with the tiny base's tokenizer: one line per model (model=tiny|llama-1b).
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import bench_line  # noqa: E402
from core.settings import Settings  # noqa: E402
from trainer.synthetic import DEMO_TOOLS, demo_examples  # noqa: E402
from trainer.train import TrainConfig, load_model, train_adapter  # noqa: E402

# Shapes of public models (TinyLlama-1.1B, Llama-3.2-3B, Llama-3.1-8B; the last two with TinyLlama's 32k vocabulary,
# since the tiny tokenizer uses 2k ids anyway): weights are random, only the memory matters.
SYNTHETIC_SIZES = {
    "1b": {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
           "num_key_value_heads": 4},
    "3b": {"hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 28, "num_attention_heads": 24,
           "num_key_value_heads": 8},
    "8b": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
           "num_key_value_heads": 8},
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def free_cuda() -> None:
    import torch

    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()


def peak_gib(model: str, method: str, steps: int, batch_size: int) -> float:
    import torch

    free_cuda()
    work = Path(tempfile.mkdtemp(prefix="cda-p7-"))
    try:
        train_adapter(model, demo_examples(64), list(DEMO_TOOLS), TrainConfig(method=method, max_steps=steps,
                      batch_size=batch_size, allow_fallback=False, checkpoint_every=10**9), work)
        return torch.cuda.max_memory_allocated() / 2**30
    finally:
        shutil.rmtree(work, ignore_errors=True)


def load_gib(model: str, method: str) -> float:
    """GPU memory of the model as the trainer loads it, before LoRA, optimizer and activations."""
    import torch

    free_cuda()
    loaded = load_model(model, method)
    used = torch.cuda.memory_allocated() / 2**30
    del loaded
    free_cuda()
    return used


def build_synthetic(size: str, tokenizer_from: Path, target: Path, device: str = "cuda") -> Path:
    """A randomly initialised bf16 Llama of `size`'s shape in `target`, with the tokenizer of `tokenizer_from`."""
    import torch
    from transformers import AutoConfig, LlamaConfig, LlamaForCausalLM

    tiny = AutoConfig.from_pretrained(tokenizer_from)
    config = LlamaConfig(**SYNTHETIC_SIZES[size], vocab_size=32000, max_position_embeddings=4096,
                         bos_token_id=tiny.bos_token_id, eos_token_id=tiny.eos_token_id, pad_token_id=tiny.pad_token_id,
                         tie_word_embeddings=False, rms_norm_eps=1e-5)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(target)
    del model
    for name in TOKENIZER_FILES:
        if (tokenizer_from / name).exists():
            shutil.copy(tokenizer_from / name, target / name)
    if device == "cuda":
        free_cuda()
    return target


def measure(model: str, label: str, steps: int, batch_size: int) -> None:
    lora, qlora = peak_gib(model, "LORA", steps, batch_size), peak_gib(model, "QLORA", steps, batch_size)
    lora_load, qlora_load = load_gib(model, "LORA"), load_gib(model, "QLORA")
    bench_line("P7", model=label, qlora_peak_gib=qlora, lora_peak_gib=lora, ratio=qlora / lora, goal_ratio=0.4,
               qlora_load_gib=qlora_load, lora_load_gib=lora_load, steps=steps, batch=batch_size)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="base model folder (default: the tiny local base)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--synthetic-size", choices=sorted(SYNTHETIC_SIZES), default=None,
                        help="also measure a random Llama-style model of this size built from its config")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        bench_line("P7", skipped="no_cuda")
        return
    settings = Settings()
    model = args.model
    if model is None:  # the tiny base as built by `cda model init-tiny`, else the one shipped in the repository
        from trainer.tiny_model import SHIPPED

        model = settings.base_model_path if Path(settings.base_model_path, "config.json").exists() else str(SHIPPED)
    measure(model, "tiny" if args.model is None else Path(model).name, args.steps, args.batch_size)
    if args.synthetic_size:
        folder = Path(tempfile.mkdtemp(prefix="cda-p7-synthetic-"))
        try:
            built = build_synthetic(args.synthetic_size, Path(model), folder / f"llama-{args.synthetic_size}")
            measure(str(built), f"llama-{args.synthetic_size}", args.steps, args.batch_size)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
