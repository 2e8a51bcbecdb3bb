"""BENCH P7 (CUDA only): QLoRA peak GPU memory vs 16-bit LoRA on the same model (goal ratio <= 0.4).

    python benchmarks/p7_qlora_memory.py [--model PATH] [--steps 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import bench_line  # noqa: E402
from cda.settings import Settings  # noqa: E402
from trainer.synthetic import DEMO_TOOLS, demo_examples  # noqa: E402
from trainer.train import TrainConfig, train_adapter  # noqa: E402


def peak_gib(model: str, method: str, steps: int) -> float:
    import torch

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    train_adapter(model, demo_examples(64), list(DEMO_TOOLS), TrainConfig(method=method, max_steps=steps,
                  allow_fallback=False, checkpoint_every=10**9), Path(tempfile.mkdtemp(prefix="cda-p7-")))
    return torch.cuda.max_memory_allocated() / 2**30


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        bench_line("P7", skipped="no_cuda")
        return
    model = args.model or Settings().base_model_path
    lora, qlora = peak_gib(model, "LORA", args.steps), peak_gib(model, "QLORA", args.steps)
    bench_line("P7", qlora_peak_gib=qlora, lora_peak_gib=lora, ratio=qlora / lora, goal_ratio=0.4)


if __name__ == "__main__":
    main()
