"""Tables the agents read: each company's tools (`company_tools`) and agent settings (`company_agents`),
each folded from its compacted topic by a `topics.tables.TopicTable`."""

from __future__ import annotations

import threading

from core.settings import Settings
from streams.agent_settings import AgentSettings
from streams.tools import Tool, ToolRegistry
from topics.events import Event
from topics.tables import TopicTable


class CompanyTables:
    """The tools registry and the agent settings, as the agents read them."""

    def __init__(self, settings: Settings) -> None:
        self.registry = ToolRegistry()
        self.agents: dict[str, AgentSettings] = {}
        self.tools_table = TopicTable(settings, "company_tools", self.registry.apply)
        self.agents_table = TopicTable(settings, "company_agents", self._apply_agent)

    def _apply_agent(self, event: Event) -> None:
        self.agents[event.company_id] = AgentSettings.from_event(event)

    def start(self, stop: threading.Event) -> CompanyTables:
        self.tools_table.start(stop)
        self.agents_table.start(stop)
        return self

    def wait_caught_up(self, timeout_s: float) -> bool:
        return self.tools_table.wait_caught_up(timeout_s) and self.agents_table.wait_caught_up(timeout_s)

    def tools_of(self, company_id: str) -> dict[str, Tool]:
        with self.tools_table.lock:
            return self.registry.tools_of(company_id)

    def agent_of(self, company_id: str) -> AgentSettings | None:
        with self.agents_table.lock:
            return self.agents.get(company_id)

    @property
    def healthy(self) -> bool:
        return all(t.worker is not None and t.worker.healthy for t in (self.tools_table, self.agents_table))
