"""Which memory entries a decision sees: the company's entries ranked by BM25 (rank-bm25's BM25Plus, whose
idf stays positive in a company's small corpus, without its constant, so an entry sharing no term scores 0)
against the task, the data and the names of the tools and arguments the model may use (a note decides an
argument, so it names the argument), then by recency, and kept while they fit a token budget. At most one
automation entry: history is context, preferences decide."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from context.memory import AUTOMATION, MemoryEntry
from core.prompts import ToolSpec

_WORD = re.compile(r"[A-Za-z0-9]+")
_STOP = frozenset("a an and the to of for in on is are be with as at by this that it its we our us all every".split())


def terms(text: str) -> list[str]:
    """Lower-case words, stop words out, a plural's `s` off (invoice/invoices): what BM25 matches on."""
    out = []
    for word in _WORD.findall(text.replace("_", " ")):
        word = word.lower()
        if word in _STOP:
            continue
        out.append(word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word)
    return out


def _flatten(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _flatten(item)
    elif isinstance(value, list):
        for item in value:
            yield from _flatten(item)
    elif value is not None:
        yield str(value)


def query_terms(task: str, data_json: str, tools: Sequence[ToolSpec]) -> list[str]:
    try:
        data = " ".join(_flatten(json.loads(data_json)))
    except json.JSONDecodeError:
        data = data_json
    names = " ".join(f"{t.name} {' '.join(t.parameters.get('properties', {}))}" for t in tools)
    return terms(f"{task} {data} {names}")


def estimate_tokens(text: str) -> int:
    """A tokenizer-free bound (about one token per three characters, as the tiny base splits digits one by one)."""
    return len(text) // 3 + 1


@dataclass(frozen=True)
class Recalled:
    """The notes a prompt shows (most relevant first) and the entries they came from."""

    notes: tuple[str, ...] = ()
    entry_ids: tuple[str, ...] = ()


class RecallIndex:
    """A company's recallable entries, tokenised and indexed once for a job's many decisions."""

    def __init__(self, entries: Sequence[MemoryEntry]) -> None:
        self.entries = list(entries)
        self.docs = [terms(f"{e.note()} {' '.join(e.tags)}") for e in self.entries]
        self._words = [frozenset(doc) for doc in self.docs]  # for the shared-term test of every decision
        self._bm25: Any = None

    def _scores(self, query: list[str]) -> list[float]:
        if not query:
            return [0.0] * len(self.entries)  # 0 without a shared term
        if self._bm25 is None:
            from rank_bm25 import BM25Plus

            self._bm25 = BM25Plus(self.docs, delta=0.0)
        return [float(s) for s in self._bm25.get_scores(query)]

    def recall(self, task: str, data_json: str, tools: Sequence[ToolSpec], budget_tokens: int = 200,
               limit: int = 4, relative: float = 0.5) -> Recalled:
        """The few most relevant entries for one decision, within `budget_tokens`. Entries sharing no term with
        the query never appear, nor those scoring under `relative` times the best one: a note for the customer
        the data names outranks the same preference for other customers by far, and showing those too only
        gives the model the wrong values to copy."""
        if not self.entries or limit <= 0:
            return Recalled()
        query = query_terms(task, data_json, tools)
        wanted = set(query)
        scores = self._scores(query)
        best = max(scores, default=0.0)
        entries, words = self.entries, self._words
        ranked = sorted(((scores[i], entries[i].written_ms, i) for i in range(len(entries))
                         if not wanted.isdisjoint(words[i]) and scores[i] >= relative * best), reverse=True)
        notes: list[str] = []
        ids: list[str] = []
        used = 0
        automation = 0
        for _score, _when, i in ranked:
            entry = entries[i]
            if entry.kind == AUTOMATION:
                if automation:
                    continue
                automation += 1
            note = entry.note()
            cost = estimate_tokens(note)
            if used + cost > budget_tokens:
                continue
            notes.append(note)
            ids.append(entry.entry_id)
            used += cost
            if len(notes) >= limit:
                break
        return Recalled(tuple(notes), tuple(ids))


def recall(entries: Sequence[MemoryEntry], task: str, data_json: str, tools: Sequence[ToolSpec],
           budget_tokens: int = 200, limit: int = 4, relative: float = 0.5) -> Recalled:
    """One decision's recall over `entries` (an index built for it alone; a job builds one RecallIndex)."""
    return RecallIndex(entries).recall(task, data_json, tools, budget_tokens, limit, relative)
