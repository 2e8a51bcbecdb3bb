"""BENCH A2 (memory value) and BENCH A3 (session value): the same served base, asked through vLLM with guided
decoding as the agents ask, on held-out jobs of companies it never saw (`trainer.context_world`, seeds apart
from pretraining's).

A2: jobs whose right call depends on a preference stated only in the company's memory: a default for an
argument the tool has (`note`), for one only notes decide (`new_note`), or one for the customer the data names
among the same preference for other customers (`for_note`), each printed apart. The company's memory holds
that entry among others; `context.recall` picks the notes for each job, as the agents do. Exact calls with
the recalled notes vs with none, and how often recall put the deciding entry in the prompt.
A3: follow-ups ("... we just created") whose id is only in an earlier job's result of the session: exact calls
with the session's earlier results in the prompt vs without them.

    python benchmarks/a2_a3_context.py [--jobs 120]
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import bench_line, options, running_vllm  # noqa: E402
from context import events as context_events  # noqa: E402
from context.memory import CompanyMemory  # noqa: E402
from context.recall import recall  # noqa: E402
from core.settings import Settings  # noqa: E402
from trainer.context_world import Situation, distractor_notes, situation, without_context  # noqa: E402
from trainer.evaluate import answers, score  # noqa: E402
from trainer.examples import Example  # noqa: E402
from trainer.synthetic import make_company  # noqa: E402

MEMORY_MODES = ("note", "new_note", "for_note")
PADDING = 6  # further entries in each company's memory, about other arguments and customers
# companies whose calls the data decides plainly (arguments named as the data's keys, values as they are), so
# what the context decides is all that is measured; their own conventions are an adapter's part (BENCH A1)
PLAIN_CONVENTIONS = {"renamed": 0.0, "prefixed": 0.0, "minor_units": 0.0, "opaque": 0.0, "described": 1.0}


def held_out(mode_set: tuple[str, ...], jobs: int, seed: int) -> list[Situation]:
    """`jobs` situations of the given modes from companies outside the pretraining world's seeds."""
    rng = random.Random(f"a2a3:{seed}:{mode_set}")
    out: list[Situation] = []
    company_index = 0
    while len(out) < jobs:
        company = make_company(f"heldout{company_index}", f"bench-ctx:{seed}:{company_index}", **PLAIN_CONVENTIONS)
        company_index += 1
        if any(arg.kind == "grade" for tool in company.tools for arg in tool.args):
            continue  # a coded grade is a convention only an adapter learns: not what A2/A3 measure
        for _ in range(4):
            out.append(situation(company, rng, rng.choice(mode_set)))
    return out[:jobs]


def ask(settings: Settings, example: Example, found: Situation) -> bool:
    call = answers(settings.vllm_url, settings.served_base_name, [example], list(found.tools))[0]
    return score(call, example, list(found.tools))[0]


def a2(settings: Settings, jobs: int, seed: int) -> None:
    rng = random.Random(f"a2-padding:{seed}")
    with_notes = without = retrieved = 0
    by_mode: dict[str, list[int]] = {mode: [0, 0] for mode in MEMORY_MODES}
    for found in held_out(MEMORY_MODES, jobs, seed):
        memory = CompanyMemory()
        taken = set(found.example.arguments)
        for text in list(found.example.notes) + distractor_notes(rng, taken, "record", PADDING):
            memory.apply(context_events.memory_entry("bench", text, 2_000))
        recalled = recall(memory.recallable("bench"), found.example.task, found.example.payload_json, list(found.tools),
                          settings.memory_prompt_tokens, settings.memory_prompt_notes)
        retrieved += found.decisive in recalled.notes
        asked = Example(found.example.task, found.example.payload_json, found.example.tool_name,
                        found.example.arguments, recalled.notes)
        right = ask(settings, asked, found)
        with_notes += right
        by_mode[found.mode][0] += right
        by_mode[found.mode][1] += 1
        without += ask(settings, without_context(found), found)
    modes = {f"with_{mode}": right / max(1, n) for mode, (right, n) in by_mode.items()}
    bench_line("A2", jobs=jobs, with_memory=with_notes / jobs, without_memory=without / jobs,
               retrieval_hit=retrieved / jobs, **modes, memory_entries=f"{PADDING}+")


def a3(settings: Settings, jobs: int, seed: int) -> None:
    with_session = without = 0
    for found in held_out(("earlier",), jobs, seed):
        with_session += ask(settings, found.example, found)
        without += ask(settings, without_context(found), found)
    bench_line("A3", jobs=jobs, with_session=with_session / jobs, without_session=without / jobs)


def main() -> None:
    args = options(__doc__, jobs=120, seed=0)
    settings = Settings()
    with running_vllm(settings) as served:
        a2(served, args.jobs, args.seed)
        a3(served, args.jobs, args.seed)


if __name__ == "__main__":
    main()
