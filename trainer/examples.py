"""A training example: one task with the tool call that served it (the prompt it becomes is `cda.prompts`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Example:
    """One task with the tool call that served it."""

    task: str
    payload_json: str
    tool_name: str
    arguments: dict[str, Any]

    @property
    def content_hash(self) -> str:
        """Stable identity: the same task, data and call hash the same, whatever the key order."""
        body = json.dumps([self.task, json.loads(self.payload_json), self.tool_name, self.arguments], sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()
