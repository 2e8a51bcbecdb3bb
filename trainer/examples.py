"""A training example: one decision of a unit — its task, data and the calls before it — with the answer that was
right: a tool call, `done` or `none` (the prompt it becomes is `core.prompts`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.prompts import PromptContext, ToolSpec


@dataclass(frozen=True)
class Example:
    """One task with the tool call that served it."""

    task: str
    payload_json: str
    tool_name: str
    arguments: dict[str, Any]
    notes: tuple[str, ...] = ()  # memory entries the prompt showed (`core.prompts`)
    earlier: tuple[str, ...] = ()  # results of the session's earlier jobs the prompt showed
    steps: tuple[str, ...] = ()  # the unit's calls before this one, with their answers (`core.prompts.render_step`)
    group: str = ""  # the steps of one unit share a group, so they fall on one side of the train/eval split

    def context(self, tools: Sequence[ToolSpec]) -> PromptContext:
        """The context this example's prompt shows, among `tools` (rendered by `core.prompts.render`)."""
        return PromptContext.of(self.task, self.payload_json, tools, self.notes, self.earlier, self.steps)

    @property
    def first_step(self) -> bool:
        """Whether this is a unit's first decision (where `none` may answer; later, `done`)."""
        return not self.steps

    @property
    def content_hash(self) -> str:
        """Stable identity: the same task, data, context and call hash the same, whatever the key order (an
        example without context hashes as it did before context existed)."""
        parts: list[Any] = [self.task, json.loads(self.payload_json), self.tool_name, self.arguments]
        if self.notes or self.earlier:
            parts += [list(self.notes), list(self.earlier)]
        if self.steps:
            parts += [list(self.steps)]
        body = json.dumps(parts, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()
