"""What inference actually serves, read from the log: "active" means the latest `adapter_activated` of a
company on the compacted `company_adapters` topic (published by the inference lifecycle once vLLM serves
it), never a file of the trainer's. Refusals (`adapter_refused` on `lora_training_status`) come with their
reasons. `cda adapters` and the trainer's gate both read it from here."""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import Settings
from inference.active import active_adapters
from topics.events import Event
from topics.reads import read_to_end


@dataclass(frozen=True)
class Refusal:
    version: str
    reason: str
    error_kind: str
    request_id: str | None
    occurred_at: str


def active_adapter(settings: Settings, company_id: str) -> Event | None:
    """The company's latest `adapter_activated`, or None when inference serves it no adapter."""
    return active_adapters(settings).get(company_id)


def refusals(settings: Settings, company_id: str) -> list[Refusal]:
    """Every adapter of the company that inference refused, oldest first, with the reason."""
    return [
        Refusal(str(e["version"]), str(e["reason"]), str(e["error_kind"]), e.data.get("request_id"), e.occurred_at.isoformat())
        for e in (r.event for r in read_to_end(settings, "lora_training_status", "cda-trainer-read"))
        if e.type == "adapter_refused" and e.company_id == company_id
    ]
