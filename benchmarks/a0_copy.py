"""BENCH A0: how exactly the base alone copies values from a task's data into a call's arguments, by kind
(digit runs, prefixed ids, mixed codes, amounts, ISO dates, multi-word names) and length. Asked through vLLM
with guided decoding, as the agents ask; every value is a fresh draw that no model has seen.

    python benchmarks/a0_copy.py [--per-cell 20] [--engine vllm|hf] [--model PATH]

`--engine hf` decodes greedily with transformers instead (no server, no guided decoding): a quicker look
while a base is being built, not the figure to report.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import bench_line, running_vllm  # noqa: E402
from core.prompts import ToolSpec  # noqa: E402
from core.settings import Settings  # noqa: E402
from trainer import values  # noqa: E402
from trainer.examples import Example  # noqa: E402

# one tool per kind, each taking the value under the key it has in the data: the call is obvious, the copy is not
_PROBES: dict[str, tuple[str, str, str]] = {  # kind: (tool, argument = data key, JSON type)
    "digits": ("lookup_account", "account_number", "string"),
    "prefixed": ("open_invoice", "reference", "string"),
    "alnum": ("ship_order", "tracking", "string"),
    "amount": ("refund_payment", "amount", "number"),
    "date": ("schedule_meeting", "date", "string"),
    "name": ("update_customer", "name", "string"),
}
TOOLS = [ToolSpec(tool, f"{tool.split('_')[0].capitalize()} a {tool.split('_')[1]}",
                  {"type": "object", "properties": {arg: {"type": kind_type}}, "required": [arg], "additionalProperties": False})
         for tool, arg, kind_type in _PROBES.values()]
_DISTRACTOR_KEYS = ("customer_id", "order_id", "code", "total", "due", "city", "serial", "case")


def probe(kind: str, length: int, n: int, seed: int) -> list[Example]:
    """`n` tasks that each need one value of `kind` and `length` copied, among distractors of every kind."""
    rng = random.Random(f"a0:{kind}:{length}:{seed}")
    tool, arg, _ = _PROBES[kind]
    out = []
    for _ in range(n):
        value = values.draw(rng, kind, length)
        data: dict[str, Any] = {arg: value}
        for key in rng.sample(_DISTRACTOR_KEYS, rng.randint(1, 3)):
            other = rng.choice(list(_PROBES))
            data[key] = values.draw(rng, other)
        items = list(data.items())
        rng.shuffle(items)
        verb, obj = tool.split("_")
        out.append(Example(f"Please {verb} the {obj}", json.dumps(dict(items)), tool, {arg: value}))
    return out


def cells() -> list[tuple[str, int]]:
    return [(kind, length) for kind, spec in values.KINDS.items() for length in spec.lengths]


_LOADED: dict[str, tuple[Any, Any]] = {}


def hf_answers(model_dir: str, examples: list[Example], tools: list[ToolSpec]) -> list[tuple[str, dict[str, Any]] | None]:
    """Greedy calls from transformers, batched by prompt length (a development aid, see the module doc)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.prompts import parse_call, render_prompt

    if model_dir not in _LOADED:
        _LOADED[model_dir] = (AutoTokenizer.from_pretrained(model_dir),
                              AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval())
    tokenizer, model = _LOADED[model_dir]
    out: list[tuple[str, dict[str, Any]] | None] = []
    with torch.no_grad():
        for example in examples:
            ids = tokenizer(render_prompt(example.task, example.payload_json, tools), return_tensors="pt")["input_ids"]
            made = model.generate(ids, max_new_tokens=96, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                                  pad_token_id=tokenizer.pad_token_id)
            out.append(parse_call(tokenizer.decode(made[0, ids.shape[1]:], skip_special_tokens=True)))
    return out


def measure(answer: Any, per_cell: int, seed: int) -> dict[tuple[str, int], tuple[float, float]]:
    """(tool right, value copied exactly) rates per (kind, length)."""
    rates = {}
    for kind, length in cells():
        examples = probe(kind, length, per_cell, seed)
        calls = answer(examples)
        tool_right = copied = 0
        for call, example in zip(calls, examples, strict=True):
            arg, wanted = next(iter(example.arguments.items()))
            if call is not None and call[0] == example.tool_name:
                tool_right += 1
                copied += json.dumps(call[1].get(arg)) == json.dumps(wanted)
        rates[(kind, length)] = (tool_right / len(examples), copied / len(examples))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-cell", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engine", choices=("vllm", "hf"), default="vllm")
    parser.add_argument("--model", default=None, help="for --engine hf: the model folder (default: the base)")
    args = parser.parse_args()
    settings = Settings()
    if args.engine == "hf":
        model_dir = args.model or settings.base_model_path
        rates = measure(lambda ex: hf_answers(model_dir, ex, TOOLS), args.per_cell, args.seed)
    else:
        from trainer.evaluate import answers

        with running_vllm(settings) as served:
            rates = measure(lambda ex: answers(served.vllm_url, served.served_base_name, ex, TOOLS), args.per_cell, args.seed)
    by_kind: dict[str, dict[str, float]] = defaultdict(dict)
    for (kind, length), (_tool, copied) in rates.items():
        by_kind[kind][f"len{length}"] = copied
    for kind, figures in by_kind.items():
        mean = sum(figures.values()) / len(figures)
        bench_line("A0", kind=kind, exact=mean, **figures, per_cell=args.per_cell, engine=args.engine)
    overall = sum(c for _, c in rates.values()) / len(rates)
    tool = sum(t for t, _ in rates.values()) / len(rates)
    bench_line("A0", kind="all", exact=overall, tool_right=tool, cells=len(rates), per_cell=args.per_cell, engine=args.engine)


if __name__ == "__main__":
    main()
