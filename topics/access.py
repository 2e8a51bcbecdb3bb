"""Which part may read and write which topic: the ACLs `cda topics apply` gives each principal.

A part gets READ on the topics it folds or consumes and WRITE on the topics whose events it produces (dead
letters for every part that consumes). Only the api and the operator write `company_keys`; only inference (and
the api, to tombstone a forgotten company) write the adapter each company is served with. The operator (the CLI)
is a super user and needs no ACL. Consumer groups are open to every part: a group holds no data, and the parts
use throw-away groups to read compacted topics.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from core.settings import Settings
from topics.catalog import CATALOG, TopicSpec
from topics.connection import admin_client, topic_name
from topics.credentials import PARTS, login
from topics.errors import TopicsError

log = logging.getLogger(__name__)

_COMPACTED_OF_A_COMPANY = ("company_tools", "company_adapters", "company_agents", "company_memory",
                           "company_sessions", "company_keys", "company_data_keys")


@dataclass(frozen=True)
class Access:
    """The topics one part reads and writes (catalog names)."""

    reads: frozenset[str]
    writes: frozenset[str]


def _access(reads: tuple[str, ...], writes: tuple[str, ...]) -> Access:
    return Access(frozenset(reads), frozenset(writes))


PART_ACCESS: dict[str, Access] = {
    # The front door: requests, tools, settings, memory, sessions and keys; forgetting a company tombstones every
    # compacted record of it. It reads the job log for its event streams.
    "api": _access(
        reads=(*_COMPACTED_OF_A_COMPANY, "company_automation_jobs", "lora_adapter_ready", "lora_training_status"),
        writes=(*_COMPACTED_OF_A_COMPANY, "company_data", "lora_training_requests", "lora_adapter_ready",
                "dead_letters"),
    ),
    # Runs jobs: reads requests, tools, settings, memory and sessions and its own job log; writes the job log,
    # memory (history, folded sessions) and closes idle sessions.
    "agents": _access(
        reads=("company_data", "company_tools", "company_agents", "company_memory", "company_sessions",
               "company_automation_jobs", "company_adapters", "company_data_keys"),
        writes=("company_automation_jobs", "company_memory", "company_sessions", "company_data_keys", "dead_letters"),
    ),
    # Trains on a company's data, tools, jobs and memory, against the adapter it is served with; announces adapters
    # and progress.
    "trainer": _access(
        reads=("lora_training_requests", "company_data", "company_tools", "company_automation_jobs", "company_adapters",
               "company_memory", "company_sessions", "company_agents", "lora_training_status", "lora_adapter_ready",
               "company_data_keys"),
        writes=("lora_adapter_ready", "lora_training_status", "dead_letters"),
    ),
    # Loads announced adapters and records which one each company is served with.
    "inference": _access(
        reads=("lora_adapter_ready", "company_adapters", "lora_training_status"),
        writes=("company_adapters", "lora_training_status", "dead_letters"),
    ),
    # Folds the topics of its views into ClickHouse (opening sealed content); writes only what it cannot fold.
    "projections": _access(reads=("company_data", "company_automation_jobs", "company_tools", "company_memory",
                                  "company_adapters", "lora_training_requests", "lora_training_status",
                                  "lora_adapter_ready", "company_data_keys"),
                           writes=("dead_letters",)),
}


def bindings(settings: Settings, specs: tuple[TopicSpec, ...] = CATALOG) -> list[AclBinding]:
    """The ACL bindings of every part over the catalog topics (under the settings' prefix)."""
    names = {spec.name for spec in specs}
    out: list[AclBinding] = []
    for part in PARTS:
        access = PART_ACCESS[part]
        principal = f"User:{part}"
        for name in sorted(names & access.reads):
            out.append(_allow(principal, ResourceType.TOPIC, topic_name(settings, name), AclOperation.READ))
        for name in sorted(names & access.writes):
            out.append(_allow(principal, ResourceType.TOPIC, topic_name(settings, name), AclOperation.WRITE))
        out.append(_allow(principal, ResourceType.GROUP, "*", AclOperation.READ))
    return out


def _allow(principal: str, kind: ResourceType, name: str, operation: AclOperation) -> AclBinding:
    return AclBinding(kind, name, ResourcePatternType.LITERAL, principal, "*", operation, AclPermissionType.ALLOW)


def apply_acls(settings: Settings, specs: tuple[TopicSpec, ...] = CATALOG) -> int:
    """Create the parts' missing ACLs and wait (bounded) until the broker enforces them: the controller commits a
    binding before the broker's authorizer applies it. 0 when the broker checks no ACLs; else the bindings made."""
    if login(settings) is None:
        return 0
    admin = admin_client(settings)  # kept referenced until every future resolves
    try:
        present = _present(admin, settings)
    except KafkaException as exc:
        if "SECURITY_DISABLED" in str(exc):  # authenticated, but no authorizer: nothing to apply
            log.info("the broker on %s checks no ACLs", settings.kafka_bootstrap)
            return 0
        raise TopicsError(f"reading the ACLs on {settings.kafka_bootstrap} failed: {exc}") from exc
    missing = [b for b in bindings(settings, specs) if _key(b) not in present]
    if not missing:
        return 0
    for binding, future in admin.create_acls(missing, request_timeout=settings.kafka_timeout_s).items():
        try:
            future.result(settings.kafka_timeout_s)
        except KafkaException as exc:
            raise TopicsError(f"creating the ACL {binding} on {settings.kafka_bootstrap} failed: {exc}") from exc
    wanted = {_key(b) for b in missing}
    deadline = time.monotonic() + settings.kafka_timeout_s
    while not wanted <= _present(admin, settings):
        if time.monotonic() > deadline:
            raise TopicsError(f"the broker on {settings.kafka_bootstrap} did not apply {len(wanted)} new ACLs "
                              f"within {settings.kafka_timeout_s:.0f}s")
        time.sleep(0.1)
    return len(missing)


def _key(binding: AclBinding) -> tuple[object, ...]:
    return (binding.restype, binding.name, binding.resource_pattern_type, binding.principal, binding.host,
            binding.operation, binding.permission_type)


def _present(admin: AdminClient, settings: Settings) -> set[tuple[object, ...]]:
    """The ALLOW bindings the broker's authorizer holds now, topics and groups."""
    found: set[tuple[object, ...]] = set()
    for kind in (ResourceType.TOPIC, ResourceType.GROUP):
        query = AclBindingFilter(kind, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                                 AclPermissionType.ALLOW)
        found.update(_key(b) for b in admin.describe_acls(query, request_timeout=settings.kafka_timeout_s)
                     .result(settings.kafka_timeout_s))
    return found


def drop_acls(settings: Settings, topics: list[str]) -> None:
    """Delete every ACL on these physical topics (deleted topics leave none behind)."""
    if login(settings) is None or not topics:
        return
    filters = [AclBindingFilter(ResourceType.TOPIC, name, ResourcePatternType.LITERAL, None, None,
                                AclOperation.ANY, AclPermissionType.ANY) for name in topics]
    admin = admin_client(settings)  # kept referenced until every future resolves
    for future in admin.delete_acls(filters, request_timeout=settings.kafka_timeout_s).values():
        try:
            future.result(settings.kafka_timeout_s)
        except KafkaException as exc:
            if "SECURITY_DISABLED" not in str(exc):
                raise TopicsError(f"deleting ACLs on {settings.kafka_bootstrap} failed: {exc}") from exc
