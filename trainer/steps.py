"""The decisions of a unit after its first: an adapter must learn when a unit is finished.

The agents ask again after every call, with the call and the tool's answer under `Steps:`, until the model
answers `done` (`core.prompts`). A company's examples teach the first call; here each of them (a share in
training, all of them held out) also gets its next decision: the same prompt with the call and an answer a
company API might give, where the right answer is `done`. A unit of several labelled calls (a lookup, then
the action with what it returned) comes unrolled, one example per decision (`api.schemas.training`)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from core.prompts import ANSWERS, DONE, render_step
from trainer.examples import Example

DONE_SHARE = 0.3  # training examples that also teach the decision after their call


def plausible_answer(rng: random.Random, arguments: dict[str, Any]) -> dict[str, Any]:
    """What a company's API might answer to a call: an id, a status, an echoed argument. The adapter learns that
    after the unit's action it is done whatever the answer says."""
    answer: dict[str, Any] = {}
    roll = rng.random()
    if roll < 0.4:
        answer["id"] = rng.randint(1, 99_999) if rng.random() < 0.5 else f"{rng.choice('ABCRTX')}-{rng.randint(10, 99_999)}"
    if roll > 0.2:
        answer[rng.choice(("status", "state", "result"))] = rng.choice(("ok", "created", "queued", "done", "accepted"))
    if arguments and rng.random() < 0.4:
        key = rng.choice(sorted(arguments))
        answer[key] = arguments[key]
    if rng.random() < 0.2:
        answer["tool"] = "call"
    return answer


def done_after(example: Example, answer: Any) -> Example:
    """The decision after `example`'s call was answered with `answer`: `done`."""
    return replace(example, tool_name=DONE, arguments={},
                   steps=(*example.steps, render_step(example.tool_name, example.arguments, answer)),
                   group=example.group or example.content_hash)


def with_done_steps(examples: Sequence[Example], share: float, seed: int | str = 0) -> list[Example]:
    """`examples`, and after each call (a `share` of them, drawn by `seed`) the decision that ends its unit.
    An example that is already a step of a labelled unit (it has a group) is left alone: its unit says what follows."""
    rng = random.Random(f"done-steps:{seed}")
    out: list[Example] = []
    for example in examples:
        out.append(example)
        if example.tool_name in ANSWERS or example.steps or example.group:
            continue
        if rng.random() < share:
            out.append(done_after(example, plausible_answer(rng, example.arguments)))
    return out
