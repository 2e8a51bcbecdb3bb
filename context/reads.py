"""Memory and sessions as the log holds them now, folded from their compacted topics on demand: for the CLI
and the API's writes that must know what exists (a view may lag the write just made)."""

from __future__ import annotations

from context.memory import CompanyMemory
from context.sessions import CompanySessions
from core.settings import Settings
from topics.reads import fold_topic


def read_memory(settings: Settings) -> CompanyMemory:
    memory = CompanyMemory()
    fold_topic(settings, "company_memory", memory.apply)
    return memory


def read_sessions(settings: Settings) -> CompanySessions:
    sessions = CompanySessions()
    fold_topic(settings, "company_sessions", sessions.apply)
    return sessions
