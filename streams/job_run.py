"""What one job run holds, and the boundaries the agent loop runs it against: the model's decision, the
model and the bridge as protocols, the unit's timing, the job's limits."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from context.memory import MemoryEntry
from context.prompt_context import Recall
from streams.agent_settings import AgentSettings
from streams.job_state import JobState
from streams.outcomes import CallOutcome
from streams.tools import Tool
from topics.events import Event

Emit = Callable[[Event, bool], Awaitable[None]]  # (event, wait for the broker's acknowledgement)


@dataclass(frozen=True)
class Decision:
    """The model's answer for one unit."""

    valid: bool
    tool: str | None
    arguments: dict[str, Any] | None
    raw_text: str
    model: str
    adapter_version: str | None
    error: str = ""


class Model(Protocol):
    async def decide(self, company_id: str, prompt: str, schema: dict[str, Any], use_adapter: bool) -> Decision: ...


class Bridge(Protocol):
    async def call(self, tool: Tool, arguments: dict[str, Any], idempotency_key: str, agent: AgentSettings
                   ) -> CallOutcome: ...


@dataclass
class UnitTiming:
    """Where one unit's time went: what the pipeline itself costs is wall - model - tool."""

    job_id: str
    unit: int
    model_s: float = 0.0
    tool_s: float = 0.0
    wall_s: float = 0.0


Observer = Callable[[UnitTiming], None]


@dataclass(frozen=True)
class JobLimits:
    max_payload_bytes: int = 1_000_000
    unit_steps: int = 4  # decisions per unit (`CDA_AGENT_UNIT_STEPS`)
    base_steps: int = 1  # decisions per unit when the base decides (`CDA_AGENT_BASE_STEPS`)
    model_retry_pause_s: float = 0.5
    model_retry_max_pause_s: float = 10.0
    max_result_bytes: int = 65_536  # one call's answer as recorded (`CDA_AGENT_MAX_RESULT_BYTES`)
    max_event_bytes: int = 900_000  # a job's results in `job_completed`, under the broker's record limit


@dataclass
class JobRun:
    """One job being run: the request, what the company may use, its context (the notes recalled for each
    decision, the earlier results of its session, or why its session refuses it), and the state folded so far."""

    request: Event
    tools: dict[str, Tool]
    agent: AgentSettings
    known_company: bool
    state: JobState = field(default_factory=JobState)
    started: float = field(default_factory=time.monotonic)
    recall: Recall | None = None
    earlier: list[MemoryEntry] = field(default_factory=list)
    session_refusal: tuple[str, str] | None = None

    @property
    def session_id(self) -> str | None:
        value = self.request.data.get("session_id")
        return str(value) if value else None

    @property
    def company(self) -> str:
        return self.request.company_id

    @property
    def job_id(self) -> str:
        return str(self.request["job_id"])

    @property
    def use_adapter(self) -> bool:
        asked = self.request.data.get("use_adapter")
        return self.agent.use_adapter if asked is None else bool(asked)
