"""Memory and sessions as the log holds them now, folded from their compacted topics on demand: for the CLI
and the API's writes that must know what exists (a view may lag the write just made)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from cda.settings import Settings
from streams.memory import CompanyMemory
from streams.sessions import CompanySessions
from topics.consumer import EventConsumer
from topics.dead_letters import Skipped
from topics.events import Event
from topics.positions import Position


def read_memory(settings: Settings) -> CompanyMemory:
    memory = CompanyMemory()
    _fold(settings, "company_memory", memory.apply)
    return memory


def read_sessions(settings: Settings) -> CompanySessions:
    sessions = CompanySessions()
    _fold(settings, "company_sessions", sessions.apply)
    return sessions


def _fold(settings: Settings, topic: str, apply: Callable[[Event], None]) -> None:
    with EventConsumer(settings, f"cda-read-{uuid.uuid4()}", dead_letters=Skipped()) as consumer:
        consumer.assign(topic, Position.beginning(), until_end=True)
        for received in consumer:
            apply(received.event)
