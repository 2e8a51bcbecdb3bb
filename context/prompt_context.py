"""What one decision's prompt shows, built from the company's memory the same way for everyone who asks: the
agents before each call, the trainer's gate on held-out examples, the training set's context and the
benchmarks. Recall picks the notes (`context.recall`); a session's earlier jobs give the `Earlier:` lines;
`core.prompts.render` turns the result into the prompt.

The automation history (what earlier jobs called) is left out of the notes unless `memory_history_notes` is
on: it names a tool without any argument, so it decides nothing, and it is the model's own past output, right
or wrong — recalled as the company's practice it taught the next job the last one's mistake (README, A5)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from context.memory import CompanyMemory, MemoryEntry
from context.recall import Recalled, RecallIndex
from core.prompts import PromptContext, ToolSpec, render_earlier
from core.settings import Settings

Recall = Callable[[str, str, list[ToolSpec]], Recalled]  # (task, unit data, tools) -> the notes to show


@dataclass(frozen=True)
class DecisionContext:
    """A decision's context and where it came from: the memory entries its notes are, the session's jobs."""

    context: PromptContext
    entry_ids: tuple[str, ...] = ()
    session_jobs: tuple[str, ...] = ()


def recallable(memory: CompanyMemory, company_id: str, settings: Settings) -> list[MemoryEntry]:
    """The entries a company's prompts may recall: preferences and facts, and automation history only when
    `memory_history_notes` is on (then its latest `memory_recall_automation` entries)."""
    return memory.recallable(company_id, settings.memory_recall_automation if settings.memory_history_notes else 0)


def company_recall(entries: Sequence[MemoryEntry], settings: Settings) -> Recall:
    """Recall over `entries`, indexed once, within the settings' budget of notes and tokens."""
    index = RecallIndex(entries)
    return lambda task, data, specs: index.recall(task, data, specs, settings.memory_prompt_tokens,
                                                  settings.memory_prompt_notes)


def earlier_line(entry: MemoryEntry) -> str:
    """An earlier job of the session as `Earlier:` shows it: a completed call's tool and its answer ("" when the
    entry is no completed call: a failure is never shown as a result to build on)."""
    record = entry.automation
    if record is None or record.get("status") != "completed":
        return ""
    return render_earlier(str(record.get("tool", "")), record.get("result"))


def decision_context(task: str, data_json: str, tools: Sequence[ToolSpec], recall: Recall | None = None,
                     earlier: Sequence[MemoryEntry] = (), steps: Sequence[str] = ()) -> DecisionContext:
    """The context of one decision: the notes recall gives for this task and data, the session's earlier
    completed results, oldest first, and the unit's calls so far (`core.prompts.render_step`)."""
    specs = list(tools)
    recalled = recall(task, data_json, specs) if recall is not None else Recalled()
    lines = [(e.source_job_id or e.entry_id, earlier_line(e)) for e in earlier]
    lines = [(job, line) for job, line in lines if line]
    return DecisionContext(PromptContext.of(task, data_json, specs, recalled.notes, [line for _, line in lines], steps),
                           recalled.entry_ids, tuple(dict.fromkeys(job for job, _ in lines)))
