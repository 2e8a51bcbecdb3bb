"""Creates or verifies the topic catalog on a broker, configs included; safe to run again and again."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from core.settings import Settings
from topics.access import apply_acls, drop_acls
from topics.catalog import CATALOG, TopicSpec
from topics.connection import admin_client, cluster_metadata, topic_name


@dataclass(frozen=True)
class TopicChange:
    """What `apply` did to one topic: created, updated (which configs/partitions), ok, or a problem."""

    topic: str
    action: str  # "created", "updated", "ok", "problem"
    detail: str = ""


def apply_catalog(settings: Settings, specs: tuple[TopicSpec, ...] = CATALOG) -> list[TopicChange]:
    """Create missing topics; bring configs and partition counts of existing ones to the catalog."""
    admin = admin_client(settings)
    meta = cluster_metadata(settings, admin)
    timeout = settings.kafka_timeout_s
    changes: list[TopicChange] = []
    missing = [s for s in specs if topic_name(settings, s.name) not in meta.topics]
    if missing:
        futures = admin.create_topics(
            [NewTopic(topic_name(settings, s.name), s.partitions, settings.kafka_replication,
                      config={**s.configs(), "min.insync.replicas": str(settings.kafka_min_insync)}) for s in missing],
            request_timeout=timeout,
        )
        for spec in missing:
            name = topic_name(settings, spec.name)
            try:
                futures[name].result(timeout)
                changes.append(TopicChange(name, "created", f"{spec.partitions} partitions, {spec.cleanup_policy}"))
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):  # a concurrent apply won the race: verify below
                    raise
    _wait_visible(admin, settings, {topic_name(settings, s.name): s.partitions for s in missing})
    for spec in specs:
        name = topic_name(settings, spec.name)
        if any(c.topic == name for c in changes):
            continue
        changes.append(_reconcile(admin, settings, spec, name, timeout))
    apply_acls(settings, specs)
    return changes


def _wait_visible(admin: AdminClient, settings: Settings, wanted: dict[str, int]) -> None:
    """Wait (bounded) until new topics show all their partitions in the metadata, so that a consumer or
    a second `apply` right after this one does not see a half-created topic."""
    deadline = time.monotonic() + settings.kafka_timeout_s
    while wanted and time.monotonic() < deadline:
        topics = cluster_metadata(settings, admin).topics
        if all(name in topics and len(topics[name].partitions) >= count for name, count in wanted.items()):
            return
        time.sleep(0.05)


def _reconcile(admin: AdminClient, settings: Settings, spec: TopicSpec, name: str, timeout: float) -> TopicChange:
    details: list[str] = []
    partitions = len(cluster_metadata(settings, admin, topic=name).topics[name].partitions)
    if partitions > spec.partitions:
        return TopicChange(name, "problem", f"has {partitions} partitions, catalog says {spec.partitions} (cannot shrink)")
    if partitions < spec.partitions:
        try:
            admin.create_partitions([NewPartitions(name, spec.partitions)], request_timeout=timeout)[name].result(timeout)
            details.append(f"partitions {partitions}->{spec.partitions}")
        except KafkaException as exc:  # stale metadata: another apply already grew it
            if "INVALID_PARTITIONS" not in str(exc):
                raise
    current = describe_configs(admin, name, timeout)
    wanted = spec.configs()
    differing = {k: v for k, v in wanted.items() if current.get(k) != v}
    if differing:
        resource = ConfigResource(
            ResourceType.TOPIC, name,
            incremental_configs=[ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in differing.items()],
        )
        for future in admin.incremental_alter_configs([resource], request_timeout=timeout).values():
            future.result(timeout)
        details += [f"{k}={v}" for k, v in differing.items()]
    return TopicChange(name, "updated" if details else "ok", ", ".join(details))


def describe_configs(admin: AdminClient, name: str, timeout: float) -> dict[str, str]:
    """The topic's effective configs as the broker reports them."""
    resource = ConfigResource(ResourceType.TOPIC, name)
    entries = admin.describe_configs([resource], request_timeout=timeout)[resource].result(timeout)
    return {k: e.value for k, e in entries.items()}


def delete_topics(settings: Settings, names: list[str]) -> None:
    """Delete physical topics (tests and benchmarks clean up after themselves)."""
    admin = admin_client(settings)
    for future in admin.delete_topics(names, operation_timeout=settings.kafka_timeout_s).values():
        try:
            future.result(settings.kafka_timeout_s)
        except KafkaException as exc:
            if "UNKNOWN_TOPIC" not in str(exc):
                raise
    drop_acls(settings, names)
