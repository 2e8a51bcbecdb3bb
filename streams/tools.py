"""A company's tools as the agents see them: each `tool_registered` / `tool_removed` folds into one
registry per company. A company sees and calls only its own tools: every lookup names the company."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from core.prompts import ANSWERS, ToolSpec
from topics.events import Event


@dataclass(frozen=True)
class Tool:
    """One registered tool: what the model sees (name, description, arguments schema) and how it is called."""

    company_id: str
    name: str
    description: str
    parameters: Mapping[str, Any]
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    secret_ref: str | None = None
    timeout_ms: int = 10_000

    @classmethod
    def from_event(cls, event: Event) -> Tool:
        data = event.data
        return cls(company_id=event.company_id, name=str(data["tool_name"]), description=str(data["description"]),
                   parameters=MappingProxyType(json.loads(data["parameters_schema_json"])), method=str(data["method"]),
                   url=str(data["url"]), headers=MappingProxyType(dict(data["headers"])),
                   secret_ref=data.get("secret_ref"), timeout_ms=int(data["timeout_ms"]))

    def to_fields(self) -> dict[str, Any]:
        """The fields of the `tool_registered` event that registers this tool (`ValueError` for a reserved name)."""
        if self.name in ANSWERS:
            raise ValueError(f"name {self.name!r} is reserved: the model answers it (done: the record needs no further "
                             "call; none: no tool fits the record)")
        return {"tool_name": self.name, "description": self.description,
                # key order kept: the prompt lists a tool's arguments in its schema's property order
                "parameters_schema_json": json.dumps(dict(self.parameters)), "method": self.method,
                "url": self.url, "headers": dict(self.headers), "secret_ref": self.secret_ref,
                "timeout_ms": self.timeout_ms}

    def spec(self) -> ToolSpec:
        """The tool as the prompt contract renders it."""
        return ToolSpec(self.name, self.description, json.loads(json.dumps(dict(self.parameters))))


class ToolRegistry:
    """company -> tool name -> Tool, folded from `company_tools` events (latest fact per tool wins)."""

    def __init__(self) -> None:
        self._tools: dict[str, dict[str, Tool]] = {}

    def apply(self, event: Event) -> None:
        company = self._tools.setdefault(event.company_id, {})
        if event.type == "tool_registered":
            tool = Tool.from_event(event)
            company[tool.name] = tool
        elif event.type == "tool_removed":
            company.pop(str(event["tool_name"]), None)

    def tools_of(self, company_id: str) -> dict[str, Tool]:
        return dict(self._tools.get(company_id, {}))

    def get(self, company_id: str, name: str) -> Tool | None:
        return self._tools.get(company_id, {}).get(name)

    def companies(self) -> list[str]:
        return sorted(c for c, tools in self._tools.items() if tools)
