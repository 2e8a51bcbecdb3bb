"""Which adapter each company is served, folded from the log: the latest `adapter_activated` of each company on
the compacted `company_adapters` topic (published by the lifecycle once vLLM serves it). The one reading of
"active" for inference's restore, `cda adapters` and the trainer's gate."""

from __future__ import annotations

from core.settings import Settings
from topics.events import Event
from topics.reads import read_to_end


def active_adapters(settings: Settings) -> dict[str, Event]:
    """{company: its latest `adapter_activated`}; a company inference serves no adapter is absent."""
    latest: dict[str, Event] = {}
    for received in read_to_end(settings, "company_adapters", "cda-active-adapters"):
        if received.event.type == "adapter_activated":
            latest[received.event.company_id] = received.event
    return latest
