"""Training data for one company: examples checked against the company's tools, deduplicated, capped,
split into train/eval by a stable hash, and identified by a content hash."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field

from core.json_schemas import is_valid
from core.prompts import ANSWERS, DECLINE, DONE, ToolSpec
from trainer.errors import TrainerError
from trainer.examples import Example

EVAL_SHARE = 0.2
_ANSWER_TOOL = ToolSpec("", "", {"type": "object", "properties": {}, "additionalProperties": False})  # done / none


class BadData(TrainerError):
    """The examples cannot make a dataset; `counts` says how many were rejected for which reason."""

    def __init__(self, message: str, counts: dict[str, int]) -> None:
        super().__init__(message)
        self.counts = counts


@dataclass(frozen=True)
class Dataset:
    train: tuple[Example, ...]
    eval: tuple[Example, ...]
    tools: tuple[ToolSpec, ...]
    content_hash: str
    rejected: dict[str, int] = field(default_factory=dict)


def in_eval(example: Example, share: float = EVAL_SHARE) -> bool:
    """A stable split: the example's hash (its unit's, for a later step) decides, so it stays on its side across
    requests, and no step of a held-out unit is trained on."""
    return int((example.group or example.content_hash)[:8], 16) / 0xFFFFFFFF < share


def build_dataset(examples: list[Example], tools: list[ToolSpec], *, max_examples: int = 2000,
                  min_train: int = 8, min_eval: int = 2) -> Dataset:
    """Check, deduplicate, cap and split; raise `BadData` with per-reason counts when too little is left."""
    by_name = {t.name: t for t in tools}
    rejected: Counter[str] = Counter()
    kept: dict[str, Example] = {}
    for example in examples:
        tool = by_name.get(example.tool_name) if example.tool_name not in ANSWERS else _ANSWER_TOOL
        if tool is None:
            rejected["unknown_tool"] += 1
            continue
        if (example.tool_name == DONE and example.first_step) or (example.tool_name == DECLINE and not example.first_step):
            rejected["answer_out_of_place"] += 1  # `done` needs a call before it; `none` answers a first step only
            continue
        try:
            json.loads(example.payload_json)
        except json.JSONDecodeError:
            rejected["invalid_payload_json"] += 1
            continue
        if not is_valid(tool.parameters, example.arguments):
            rejected["arguments_fail_tool_schema"] += 1
            continue
        if example.content_hash in kept:
            rejected["duplicate"] += 1
            continue
        kept[example.content_hash] = example
    ordered = sorted(kept.values(), key=lambda e: e.content_hash)
    if len(ordered) > max_examples:
        rejected["over_cap"] += len(ordered) - max_examples
        ordered = ordered[:max_examples]
    train = tuple(e for e in ordered if not in_eval(e))
    evaluation = tuple(e for e in ordered if in_eval(e))
    counts = dict(rejected)
    if len(train) < min_train or len(evaluation) < min_eval:
        counts["too_few"] = len(ordered)
        raise BadData(f"{len(ordered)} usable examples ({len(train)} train, {len(evaluation)} eval); "
                      f"need at least {min_train} train and {min_eval} eval", counts)
    digest = hashlib.sha256("".join(e.content_hash for e in ordered).encode()).hexdigest()
    return Dataset(train, evaluation, tuple(tools), digest, counts)
