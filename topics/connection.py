"""Client configuration shared by producers, consumers and admin, with bounded timeouts everywhere."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient, ClusterMetadata

from cda.settings import Settings
from topics.catalog import physical_name
from topics.errors import BrokerUnavailable

# librdkafka logs every failed connection attempt; route its log into Python logging, silent unless the
# application configures logging. Failures reach callers as exceptions that name the address.
LIBRDKAFKA_LOG = logging.getLogger("cda.kafka.client")
LIBRDKAFKA_LOG.addHandler(logging.NullHandler())


def client_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """librdkafka settings common to every client: the bootstrap address and bounded connection set-up."""
    timeout_ms = int(settings.kafka_timeout_s * 1000)
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "socket.connection.setup.timeout.ms": min(timeout_ms, 10_000),
        "socket.timeout.ms": max(timeout_ms, 10_000),
        "reconnect.backoff.max.ms": 2_000,
        "logger": LIBRDKAFKA_LOG,
    }
    config.update(overrides)
    return config


def topic_name(settings: Settings, name: str) -> str:
    """The physical name of a catalog topic under the settings' prefix."""
    return physical_name(name, settings.topic_prefix)


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient(client_config(settings))


def cluster_metadata(settings: Settings, admin: AdminClient | None = None, topic: str | None = None) -> ClusterMetadata:
    """Broker metadata within the bound, or `BrokerUnavailable` naming the bootstrap address."""
    admin = admin or admin_client(settings)
    try:
        return admin.list_topics(topic=topic, timeout=settings.kafka_timeout_s)
    except KafkaException as exc:
        raise BrokerUnavailable(
            f"Kafka broker at {settings.kafka_bootstrap} did not answer within {settings.kafka_timeout_s:.0f}s "
            f"({exc.args[0].str() if exc.args else exc}); start it with `cda kafka up` or set CDA_KAFKA_BOOTSTRAP"
        ) from exc


def fetch_batch(consumer: Consumer, max_records: int, timeout_s: float) -> list[Message]:
    """Up to `max_records` messages, waiting at most `timeout_s` for the first and not at all for the rest.

    (`Consumer.consume(n, timeout)` waits the whole timeout unless n messages arrive, which stalls small batches.)
    """
    first = consumer.poll(timeout_s)
    if first is None:
        return []
    return [first, *consumer.consume(max_records - 1, 0)] if max_records > 1 else [first]


def drop_reached(consumer: Consumer, ends: dict[tuple[str, int], int]) -> None:
    """Forget partitions whose read position passed their end offset (gaps left by compaction included)."""
    if not ends:
        return
    for tp in consumer.position([TopicPartition(t, p) for t, p in ends]):
        if tp.offset >= 0 and tp.offset >= ends[(tp.topic, tp.partition)]:
            del ends[(tp.topic, tp.partition)]
