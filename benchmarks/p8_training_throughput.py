"""BENCH P8: LoRA training throughput (examples/s) and wall time for 1,000 examples on the tiny model, CPU.

    python benchmarks/p8_training_throughput.py [--examples 1000] [--batch 16]
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import bench_line, options  # noqa: E402
from core.settings import Settings  # noqa: E402
from trainer.synthetic import DEMO_TOOLS, demo_examples  # noqa: E402
from trainer.tiny_model import build  # noqa: E402
from trainer.train import TrainConfig, train_adapter  # noqa: E402


def main() -> None:
    args = options(__doc__, examples=1000, batch=16)
    settings = Settings()
    if settings.base_model is None:
        build(Path(settings.base_model_path))
    examples = demo_examples(args.examples, seed=5)
    steps = math.ceil(len(examples) / args.batch)  # one pass over the examples
    started = time.perf_counter()
    result = train_adapter(settings.base_model_path, examples, list(DEMO_TOOLS),
                           TrainConfig(max_steps=steps, batch_size=args.batch, checkpoint_every=10**9),
                           Path(tempfile.mkdtemp(prefix="cda-p8-")))
    wall = time.perf_counter() - started
    bench_line("P8", examples_per_s=result.examples_per_s, wall_s=wall, train_loop_s=result.seconds,
               examples=len(examples), steps=steps, batch=args.batch, device="cpu")


if __name__ == "__main__":
    main()
