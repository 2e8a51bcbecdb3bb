"""BENCH A7 and A8: units of several steps, and records no tool fits — end to end through `POST /process` of a
running stack (`cda up`), for an adapter trained through `POST /train-adapter` with the trainer's defaults.

The company is Kestrel (`trainer.synthetic_steps`): billing, refunding and upgrading need a lookup first (the
action takes the id only the lookup answers), a case is one call, and a share of its records ask for work it
has no tool for. Its API is a loopback server whose lookups answer as Kestrel's would.

1. the base model first (before any adapter): each held-out record as a job, `use_adapter: false`;
2. the adapter: trained on `--train` labelled records (their calls with the answers, or `none`), gated, served;
3. the held-out records again, with the adapter.

Printed: `BENCH A7 model=… sequence_exact=…` (the exact sequence of calls, then done, over records that need
one: goal >= 0.90, base < 0.2) and `BENCH A8 model=… declines_right=… wrong_declines=…` (records no tool fits
answered `none` and nothing sent: goal >= 0.95; records that fit but were declined: goal <= 0.02).

    python benchmarks/a7_a8_steps.py [--train 400] [--held-out 120] [--declines 0.2] [--steps N] [--force]
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.a5_end_to_end import FINAL, Company, answering_api, stack, stack_settings  # noqa: E402
from benchmarks.common import bench_line, running_vllm  # noqa: E402
from core.prompts import ToolSpec, same_call  # noqa: E402
from trainer.synthetic_steps import STEP_COMPANY, STEP_TOOLS, LabelledUnit, lookup_answer, step_units  # noqa: E402


@dataclass(frozen=True)
class StepCase:
    name: str
    tools: tuple[ToolSpec, ...]


def kestrel_answer(path: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """Kestrel's lookups answer the id they keep; its other endpoints answer as any API does."""
    tool = path.rstrip("/").rsplit("/", 1)[-1]
    return lookup_answer(tool, body) if tool in ("find_account", "find_member") else None


def sequence_right(unit: LabelledUnit, got: dict[str, Any]) -> bool:
    """Exactly the unit's calls in order, and the unit completed (the model answered `done`, or the base took its one
    step) — or, for a record no tool fits, skipped with no call."""
    calls = got.get("calls") or []
    if unit.declined:
        return got.get("status") == "skipped" and not calls
    return (got.get("status") == "completed" and len(calls) == len(unit.calls)
            and all(same_call(c.get("tool"), c.get("arguments"), t, a) for c, (t, a, _) in zip(calls, unit.calls, strict=True)))


def process(company: Company, units: list[LabelledUnit], use_adapter: bool, concurrency: int) -> list[dict[str, Any]]:
    """Each record as its own job; the unit as the API shows it when the job ended."""

    def one(unit: LabelledUnit) -> dict[str, Any]:
        job = company.call("POST", "/company-automation/process", json={
            "task": unit.task, "data": unit.data, "use_adapter": use_adapter, "expected": [unit.expected()]})
        while (view := company.call("GET", f"/company-automation/jobs/{job['job_id']}", params={"wait": 30}))[
                "status"] not in FINAL:
            pass
        units = view.get("units") or [{}]
        return {**units[0], "job_right": view.get("right")}

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, units))


def report(model: str, units: list[LabelledUnit], got: list[dict[str, Any]]) -> None:
    fit = [(u, g) for u, g in zip(units, got, strict=True) if not u.declined]
    foreign = [(u, g) for u, g in zip(units, got, strict=True) if u.declined]
    multi = [(u, g) for u, g in fit if len(u.calls) > 1]
    bench_line("A7", model=model, sequence_exact=sum(sequence_right(u, g) for u, g in fit) / max(1, len(fit)),
               multi_step_exact=sum(sequence_right(u, g) for u, g in multi) / max(1, len(multi)),
               agents_verdict=sum(g.get("job_right") is True for _, g in fit) / max(1, len(fit)),
               records=len(fit), goal=0.90 if model != "base" else "<0.2")
    bench_line("A8", model=model, declines_right=sum(sequence_right(u, g) for u, g in foreign) / max(1, len(foreign)),
               wrong_declines=sum(g.get("status") == "skipped" for _, g in fit) / max(1, len(fit)),
               foreign=len(foreign), fit=len(fit), goal_declines=0.95, goal_wrong=0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--held-out", type=int, default=120)
    parser.add_argument("--declines", type=float, default=0.2, help="share of records no tool fits")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--steps", type=int, default=None, help="override the trainer's data-sized default")
    parser.add_argument("--force", action="store_true", help="serve the adapter whatever the gate says")
    args = parser.parse_args()
    settings = stack_settings("a7")
    trained = step_units(args.train, "train", args.declines)
    seen = {(u.task, str(sorted(u.data.items()))) for u in trained}
    held = [u for u in step_units(args.held_out * 2, "held-out", args.declines)
            if (u.task, str(sorted(u.data.items()))) not in seen][:args.held_out]
    with running_vllm(settings) as served, answering_api(kestrel_answer) as host, stack(served, False):
        company = Company(served, StepCase(STEP_COMPANY, STEP_TOOLS), host)  # type: ignore[arg-type]
        company.onboard()
        report("base", held, process(company, held, False, args.concurrency))
        run, train_s = company.train_records([u.training_example() for u in trained], args.steps, args.force)
        metrics = run.get("metrics") or {}
        print(f"# gate: {run['status']} exact {metrics.get('exact_match', 0):.3f} "
              f"{run.get('reason') or ''} train_s={train_s:.0f}", flush=True)
        report("adapter", held, process(company, held, True, args.concurrency))


if __name__ == "__main__":
    main()
