"""What the API process holds: its producer, the tables it follows (keys, tools), the projection store, the jobs
and training requests it accepted lately, and the rate limiter. Built once per app, closed at shutdown."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from api.holds import Holds
from api.keys import KeyTable
from api.limits import RateLimiter
from api.lookups import JobLookups
from api.readiness import Readiness
from context.memory import CompanyMemory
from context.sessions import CompanySessions
from core.settings import Settings
from projections.store import ProjectionStore
from streams.agent_settings import AgentSettings
from streams.tools import Tool, ToolRegistry
from topics.async_producer import AsyncProducer
from topics.tables import TopicTable


class Recent:
    """Requests this process produced, by (company, kind, id), bounded: a read right after the 202 finds them
    before the projection does, and a repeated request id is known without asking the store."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str, str], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, company_id: str, kind: str, name: str, info: dict[str, Any]) -> None:
        with self._lock:
            self._items[(company_id, kind, name)] = info
            if len(self._items) > self.size:
                self._items.popitem(last=False)

    def get(self, company_id: str, kind: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._items.get((company_id, kind, name))

    def names(self, company_id: str, kind: str) -> list[str]:
        with self._lock:
            return [n for (c, k, n) in self._items if c == company_id and k == kind]


@dataclass
class ApiContext:
    settings: Settings
    store: ProjectionStore
    producer: AsyncProducer
    keys: KeyTable = field(default_factory=KeyTable)
    registry: ToolRegistry = field(default_factory=ToolRegistry)
    stop: threading.Event = field(default_factory=threading.Event)
    inflight: dict[str, Any] = field(default_factory=dict)  # job id -> future of its request being produced
    recent: Recent = field(init=False)
    limiter: RateLimiter = field(init=False)
    keys_table: TopicTable = field(init=False)
    tools_table: TopicTable = field(init=False)
    agents: dict[str, AgentSettings] = field(default_factory=dict)  # each company's agent settings (company_agents)
    agents_table: TopicTable = field(init=False)
    readiness: Readiness = field(init=False)
    lookups: JobLookups = field(init=False)
    memory: CompanyMemory = field(default_factory=CompanyMemory)  # company_memory, folded (deletes answer from it)
    memory_table: TopicTable = field(init=False)
    sessions: CompanySessions = field(default_factory=CompanySessions)  # company_sessions, folded
    sessions_table: TopicTable = field(init=False)
    holds: Holds = field(init=False)

    def __post_init__(self) -> None:
        self.recent = Recent(self.settings.api_recent_kept)
        self.limiter = RateLimiter(self.settings.api_rate_per_s, self.settings.api_rate_burst)
        self.keys_table = TopicTable(self.settings, "company_keys", self.keys.apply)
        self.tools_table = TopicTable(self.settings, "company_tools", self.registry.apply)
        self.agents_table = TopicTable(self.settings, "company_agents", self._apply_agent)
        self.readiness = Readiness(self)
        self.lookups = JobLookups(self.store)
        self.memory_table = TopicTable(self.settings, "company_memory", self.memory.apply)
        self.sessions_table = TopicTable(self.settings, "company_sessions", self.sessions.apply)
        self.holds = Holds(self.settings.api_key_holds)

    @classmethod
    def open(cls, settings: Settings, store: ProjectionStore | None = None) -> ApiContext:
        return cls(settings, store or ProjectionStore.from_settings(settings), AsyncProducer(settings))

    def start(self, timeout_s: float) -> bool:
        """Follow the keys, tools and agent settings topics; True once each was read to its end, False if the time
        is up. A follower that died (a topic missing, say) raises its error at once, naming what to do."""
        for table in self.tables:
            table.start(self.stop)
        caught_up = all(table.wait_caught_up(timeout_s) for table in self.tables)
        for table in self.tables:
            if table.worker is not None and table.worker.error is not None:
                raise table.worker.error
        return caught_up

    def tools_of(self, company_id: str) -> dict[str, Tool]:
        with self.tools_table.lock:
            return self.registry.tools_of(company_id)

    def apply_tool_event(self, event: Any) -> None:
        """Read your writes: what this process registered is visible to it before the follower meets it."""
        with self.tools_table.lock:
            self.registry.apply(event)

    def apply_context_events(self, events: list[Any]) -> None:
        """Read your writes: memory and session events this process produced, before the followers meet them."""
        for event in events:
            if event.type in ("session_opened", "session_closed"):
                self.sessions.apply(event)
            else:
                self.memory.apply(event)

    async def publish_context(self, events: list[Any], *, tombstones: bool = False) -> None:
        """Memory or session events produced (with a tombstone for each entry's key where they delete), then
        visible to this process at once."""
        await self.producer.send(events, tombstones=events if tombstones else ())
        self.apply_context_events(events)

    def agent_settings(self, company_id: str) -> AgentSettings:
        with self.agents_table.lock:
            return self.agents.get(company_id) or AgentSettings(company_id)

    def _apply_agent(self, event: Any) -> None:  # the table's fold: called under its lock
        self.agents[event.company_id] = AgentSettings.from_event(event)

    def apply_agent_event(self, event: Any) -> None:
        """Read your writes: settings this process produced count before the follower meets them."""
        with self.agents_table.lock:
            self._apply_agent(event)

    @property
    def tables(self) -> tuple[TopicTable, ...]:
        return self.keys_table, self.tools_table, self.agents_table, self.memory_table, self.sessions_table

    @property
    def followers_healthy(self) -> bool:
        return all(t.worker is not None and t.worker.healthy for t in self.tables)

    def close(self) -> None:
        self.stop.set()
        for table in self.tables:
            if table.worker is not None:
                table.worker.join(10)
        self.readiness.close()
        self.producer.close()
