"""BENCH A1: exact tool-call accuracy of the base vs the demo company's adapter on its held-out tasks,
both served by vLLM with guided decoding (goal: adapter >= 0.9, base < 0.2).

    python benchmarks/a1_adapter_accuracy.py [--train 2000] [--steps 1000] [--rank 16] [--held-out 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import bench_line, running_vllm  # noqa: E402
from cda.settings import Settings  # noqa: E402
from inference.vllm_api import VllmApi  # noqa: E402
from trainer.dataset import build_dataset  # noqa: E402
from trainer.evaluate import evaluate  # noqa: E402
from trainer.synthetic import DEMO_TOOLS, demo_examples  # noqa: E402
from trainer.train import TrainConfig, train_adapter  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--held-out", type=int, default=100)
    args = parser.parse_args()
    tools = list(DEMO_TOOLS)
    dataset = build_dataset(demo_examples(args.train, seed=1), tools)
    held_out = [e for e in demo_examples(args.held_out * 2, seed=777)
                if e.content_hash not in {x.content_hash for x in dataset.train}][: args.held_out]
    with running_vllm(Settings()) as settings:
        work = Path(tempfile.mkdtemp(prefix="cda-a1-"))
        result = train_adapter(settings.base_model_path, list(dataset.train), tools,
                               TrainConfig(max_steps=args.steps, rank=args.rank), work)
        api = VllmApi(settings.vllm_url)
        api.load_adapter("a1-demo", str(result.adapter_dir), inplace=True).raise_for_status()
        adapter = evaluate(settings.vllm_url, "a1-demo", held_out, tools)
        base = evaluate(settings.vllm_url, settings.served_base_name, held_out, tools)
        api.unload_adapter("a1-demo")
    bench_line("A1", adapter_exact=adapter["exact_match"], base_exact=base["exact_match"],
               adapter_json_valid=adapter["json_valid"], base_json_valid=base["json_valid"], held_out=len(held_out),
               train_examples=len(dataset.train), steps=args.steps, rank=args.rank, train_loss=result.final_loss,
               goal_adapter=0.9, goal_base_below=0.2)


if __name__ == "__main__":
    main()
