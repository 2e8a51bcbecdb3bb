"""Pretrain the tiny base on a CUDA machine, from starting weights built HERE (so tokenizer and initial
weights are exactly the recipe's, whatever library versions the GPU machine has).

    # here:  python scripts/pretrain_on_device.py init .gpu_base/tiny          (tokenizer + seeded weights)
    # there: python3 scripts/pretrain_on_device.py run .gpu_base/tiny $OUT [--budget-s 300]
    # here:  python scripts/pretrain_on_device.py ship .gpu_base/tiny OUTDIR STEPS   (into trainer/base/tiny)

The context stage (`ContextPlan`) continues from the shipped base the same way:

    # there: python3 scripts/pretrain_on_device.py context trainer/base/tiny $OUT [--budget-s 240]
    # here:  python scripts/pretrain_on_device.py ship-context OUTDIR STEPS          (into trainer/base/tiny)

`run` times a few steps first and picks the largest step count of the plan's ladder that fits the budget;
the steps it ran are printed and become the recipe's (`PretrainPlan.steps`) when the result is shipped.
On two CPU cores the same recipe takes many hours; `cda model init-tiny --force` still rebuilds it there.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LADDER = tuple(int(s) for s in os.environ.get("CDA_PRETRAIN_LADDER", "4000,6000,8000,10000,12000,16000,20000").split(","))


def _init(folder: Path) -> None:
    from trainer.tiny_model import TinyModelSpec, _write_random, sha256_of

    shutil.rmtree(folder, ignore_errors=True)
    _write_random(folder, TinyModelSpec())
    print("init sha256", sha256_of(folder / "model.safetensors"))


def _run(folder: Path, out: Path, budget_s: float) -> None:
    import torch

    from trainer.pretrain import pretrain
    from trainer.tiny_model import PretrainPlan, TinyModelSpec

    print("torch", torch.__version__, "cuda", torch.cuda.is_available(), flush=True)
    plan, seed, workers = PretrainPlan(), TinyModelSpec().seed, min(12, (os.cpu_count() or 2) - 2)
    marks: dict[int, float] = {}
    pretrain(folder, steps=LADDER[0], batch_size=plan.batch_size, learning_rate=plan.learning_rate,
             warmup=plan.warmup, seed=seed, stop_after=150, workers=workers,
             progress=lambda s, _loss: marks.setdefault(s, time.perf_counter()))
    per_step = (marks[150] - marks[50]) / 100  # past the workers' start-up
    fitting = [s for s in LADDER if s * per_step * 1.1 < budget_s]
    steps = fitting[-1] if fitting else LADDER[0]
    print(f"probe: {per_step * 1000:.1f} ms/step -> steps {steps}", flush=True)
    started = time.perf_counter()
    losses = pretrain(folder, steps=steps, batch_size=plan.batch_size, learning_rate=plan.learning_rate,
                      warmup=plan.warmup, seed=seed, workers=workers,
                      progress=lambda s, loss: print(f"step {s}/{steps} loss {loss:.4f} {time.perf_counter() - started:.0f}s",
                                                     flush=True) if s % 500 == 0 else None)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "config.json"):
        shutil.copyfile(folder / name, out / name)
    (out / "run.json").write_text(json.dumps({"steps": steps, "seconds": time.perf_counter() - started,
                                              "ms_per_step": per_step * 1000, "last_losses": losses[-50:],
                                              "torch": torch.__version__,
                                              "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}))
    print("done", steps, "steps, mean of last 50 losses", sum(losses[-50:]) / 50, flush=True)


CONTEXT_LADDER = (1500, 2000, 2500, 3000, 4000)


def _context(shipped: Path, out: Path, budget_s: float) -> None:
    import dataclasses

    import torch

    from trainer.tiny_model import ContextPlan, pretrain_context

    folder = Path("/tmp/cda-context-base")
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(shipped, folder)
    workers = min(12, (os.cpu_count() or 2) - 2)
    print("torch", torch.__version__, "cuda", torch.cuda.is_available(), flush=True)
    marks: dict[int, float] = {}
    from trainer.pretrain import pretrain

    plan = ContextPlan(seed=int(os.environ.get("CDA_CONTEXT_SEED", "1")))
    pretrain(folder, steps=plan.steps, batch_size=plan.batch_size, learning_rate=plan.learning_rate, warmup=plan.warmup,
             seed=plan.seed, stop_after=150, workers=workers, world="context",
             progress=lambda s, _loss: marks.setdefault(s, time.perf_counter()))
    per_step = (marks[150] - marks[50]) / 100
    fitting = [s for s in CONTEXT_LADDER if s * per_step * 1.1 < budget_s]
    plan = dataclasses.replace(plan, steps=fitting[-1] if fitting else CONTEXT_LADDER[0])
    print(f"probe: {per_step * 1000:.1f} ms/step -> steps {plan.steps}", flush=True)
    started = time.perf_counter()
    losses = pretrain_context(folder, plan, workers=workers)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / "model.safetensors", out / "model.safetensors")
    (out / "run.json").write_text(json.dumps({"steps": plan.steps, "seconds": time.perf_counter() - started,
                                              "ms_per_step": per_step * 1000, "last_losses": losses[-50:],
                                              "torch": torch.__version__,
                                              "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}))
    print("done", plan.steps, "steps, mean of last 50 losses", sum(losses[-50:]) / 50, flush=True)


def _ship_context(result: Path, steps: int) -> None:

    from trainer.tiny_model import CONTEXT_STAGES, SHIPPED, PretrainPlan, TinyModelSpec, _publish, recipe, ship

    folder = Path(".gpu_base/tiny-context")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for item in SHIPPED.iterdir():
        if item.is_file() and item.name != "manifest.json":
            shutil.copyfile(item, folder / item.name)
    shutil.copyfile(result / "model.safetensors", folder / "model.safetensors")
    if CONTEXT_STAGES[-1].steps != steps:
        raise SystemExit(f"first set the last of CONTEXT_STAGES to the {steps} steps that ran")
    wanted = recipe(TinyModelSpec(), PretrainPlan().steps, CONTEXT_STAGES)
    built = _publish(folder, folder.with_name("tiny-context-built"), wanted)
    print(ship(built, TinyModelSpec(), PretrainPlan().steps))


def _ship(folder: Path, result: Path, steps: int) -> None:
    from trainer.tiny_model import TinyModelSpec, _publish, recipe, ship

    shutil.copyfile(result / "model.safetensors", folder / "model.safetensors")
    built = _publish(folder, folder.with_name("tiny-built"), recipe(TinyModelSpec(), steps))
    print(ship(built, TinyModelSpec(), steps))


if __name__ == "__main__":
    verb, folder = sys.argv[1], Path(sys.argv[2])
    if verb == "init":
        _init(folder)
    elif verb == "run":
        budget = float(sys.argv[sys.argv.index("--budget-s") + 1]) if "--budget-s" in sys.argv else 300.0
        _run(folder, Path(sys.argv[3]), budget)
    elif verb == "context":
        budget = float(sys.argv[sys.argv.index("--budget-s") + 1]) if "--budget-s" in sys.argv else 240.0
        _context(folder, Path(sys.argv[3]), budget)
    elif verb == "ship-context":
        _ship_context(folder, int(sys.argv[3]))
    elif verb == "ship":
        _ship(folder, Path(sys.argv[3]), int(sys.argv[4]))
    else:
        raise SystemExit(__doc__)
