"""The topic catalog: every topic's name, record key, partitions, cleanup policy and event types.

The record key is derived from the event by the catalog (company id first), so producers cannot
scatter one company's events over partitions, and compacted topics keep one record per entity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.bounds import at_least
from topics.errors import UnknownTopic
from topics.events import Event

DAY_MS = 24 * 3600 * 1000
FOREVER = -1


@dataclass(frozen=True)
class TopicSpec:
    """One topic of the contract."""

    name: str
    event_types: tuple[str, ...]
    key_fields: tuple[str, ...] = ("company_id",)
    partitions: int = 3
    cleanup_policy: str = "delete"  # "delete" or "compact"
    retention_ms: int = FOREVER
    extra_config: dict[str, str] = field(default_factory=dict)
    doc: str = ""

    def __post_init__(self) -> None:
        if self.cleanup_policy not in ("delete", "compact", "compact,delete"):
            raise ValueError(f"topic {self.name}: cleanup_policy must be delete or compact, not {self.cleanup_policy!r}")
        at_least(f"topic {self.name}", 1, partitions=self.partitions)

    def key_for(self, event: Event) -> bytes:
        """The record key: the key fields of the event joined by '/' (company id first)."""
        return "/".join(str(event.data[f]) for f in self.key_fields).encode()

    def configs(self) -> dict[str, str]:
        """Topic configs as the broker stores them."""
        out = {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}
        if "compact" in self.cleanup_policy:
            # Compact soon enough that users (and tests) see it; the dirty ratio keeps it cheap.
            out.update({"min.cleanable.dirty.ratio": "0.1", "segment.ms": str(3600 * 1000)})
        out.update(self.extra_config)
        return out


CATALOG: tuple[TopicSpec, ...] = (
    TopicSpec(
        "company_data", ("data_process_requested",), partitions=6, retention_ms=30 * DAY_MS,
        doc="Requests to process company data; the REST API writes here.",
    ),
    TopicSpec(
        "company_automation_jobs",
        ("job_accepted", "step_started", "tool_call_requested", "tool_call_completed", "tool_call_failed",
         "unit_ended", "job_completed", "job_failed"),
        partitions=6,
        doc="The life of every automation job; the source of the jobs and tool-call views.",
    ),
    TopicSpec(
        "company_tools", ("tool_registered", "tool_removed"), key_fields=("company_id", "tool_name"),
        cleanup_policy="compact", doc="Each company's tools; compacted to the latest fact per tool.",
    ),
    TopicSpec("lora_training_requests", ("lora_training_requested",), doc="Requests to train a company adapter."),
    TopicSpec("lora_adapter_ready", ("lora_adapter_ready",), doc="Adapters trained, evaluated and stored."),
    TopicSpec(
        "lora_training_status", ("training_progress", "training_failed", "training_rejected", "adapter_refused"),
        retention_ms=30 * DAY_MS, doc="Progress, failure and rejection of training requests; adapters the server refused.",
    ),
    TopicSpec(
        "company_adapters", ("adapter_activated",), cleanup_policy="compact",
        doc="The adapter each company is served with; compacted to the latest activation per company.",
    ),
    TopicSpec(
        "company_agents", ("agent_configured",), cleanup_policy="compact",
        doc="Each company's agent settings (adapter or base, step limit, concurrency, reachable hosts, secrets).",
    ),
    TopicSpec(
        "company_memory", ("memory_written", "memory_deleted"), key_fields=("company_id", "entry_id"),
        cleanup_policy="compact", doc="Company memory entries; compacted to the latest fact per entry.",
    ),
    TopicSpec(
        "company_sessions", ("session_opened", "session_closed"), key_fields=("company_id", "session_id"),
        cleanup_policy="compact", doc="Company sessions; compacted to the latest fact per session.",
    ),
    TopicSpec(
        "company_keys", ("company_key_issued", "company_key_revoked"), key_fields=("company_id", "key_id"),
        cleanup_policy="compact", doc="Each company's API keys as salted hashes (never a key); compacted per key.",
    ),
    TopicSpec(
        "company_data_keys", ("data_key_issued",), key_fields=("company_id", "key_id"), partitions=1,
        cleanup_policy="compact",
        # a deleted key should leave the disk soon: small segments, compacted at once, tombstones not kept
        extra_config={"segment.ms": str(60_000), "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "0",
                      "min.compaction.lag.ms": "0"},
        doc="Each company's data keys (crypto-shredding): deleting them makes its sealed history unreadable.",
    ),
    TopicSpec(
        "dead_letters", ("dead_letter",), partitions=1, retention_ms=90 * DAY_MS,
        doc="Records no consumer could process, with the reason; nothing is dropped.",
    ),
)

_BY_NAME = {spec.name: spec for spec in CATALOG}
_BY_EVENT = {event_type: spec for spec in CATALOG for event_type in spec.event_types}


def topic(name: str) -> TopicSpec:
    """The catalog entry of a topic, by its catalog name (without prefix)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownTopic(f"unknown topic {name!r}; the catalog has: {', '.join(_BY_NAME)}") from None


def topic_of(event_type: str) -> TopicSpec:
    """The topic an event type is written to."""
    try:
        return _BY_EVENT[event_type]
    except KeyError:
        raise UnknownTopic(f"event type {event_type!r} belongs to no topic in the catalog") from None


def physical_name(name: str, prefix: str = "") -> str:
    """The broker-side topic name: the settings' prefix plus the catalog name."""
    return f"{prefix}{name}"
