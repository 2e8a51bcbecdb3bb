"""Client configuration shared by producers, consumers and admin, with bounded timeouts everywhere."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient, ClusterMetadata

from core.retry import RetryPolicy
from core.settings import Settings
from topics.catalog import physical_name
from topics.credentials import login
from topics.errors import BrokerUnavailable, TopicsError

# librdkafka logs every failed connection attempt; route its log into Python logging, silent unless the
# application configures logging. Failures reach callers as exceptions that name the address.
T = TypeVar("T")
LIBRDKAFKA_LOG = logging.getLogger("cda.kafka.client")
LIBRDKAFKA_LOG.addHandler(logging.NullHandler())


def client_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """librdkafka settings common to every client: the bootstrap address, this process's principal (when the
    broker authenticates) and bounded connection set-up."""
    timeout_ms = int(settings.kafka_timeout_s * 1000)
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "socket.connection.setup.timeout.ms": min(timeout_ms, 10_000),
        "socket.timeout.ms": max(timeout_ms, 10_000),
        "reconnect.backoff.max.ms": 2_000,
        "logger": LIBRDKAFKA_LOG,
    }
    if (credentials := login(settings)) is not None:
        config.update(credentials.librdkafka())
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


_SETTLING = frozenset({KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                       KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._TIMED_OUT, KafkaError._TRANSPORT,
                       KafkaError.REQUEST_TIMED_OUT, KafkaError.NOT_COORDINATOR})


def _settling(exc: BaseException) -> bool:
    """A broker answer that passes by itself: a new topic's leader not elected yet, a timeout, a lost link."""
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    return isinstance(error, KafkaError) and (error.code() in _SETTLING or error.retriable())


def broker_call(settings: Settings, what: str, call: Callable[[], T]) -> T:
    """`call()` retried while the broker is settling, within the settings' bound; else `BrokerUnavailable`."""
    policy = RetryPolicy(attempts=20, deadline_s=settings.kafka_timeout_s, backoff_s=0.05, max_backoff_s=1.0)
    try:
        return policy.call(lambda _remaining: call(), retry_if=_settling)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else exc
        detail = error.str() if isinstance(error, KafkaError) else str(error)
        if _settling(exc):
            raise BrokerUnavailable(f"{what} on {settings.kafka_bootstrap} failed: {detail}") from exc
        raise TopicsError(f"{what} on {settings.kafka_bootstrap} failed: {detail}") from exc


def watermarks(settings: Settings, consumer: Consumer, tp: TopicPartition) -> tuple[int, int]:
    """The low and high offsets of a partition, waiting out a new topic's leader election."""
    return broker_call(settings, f"reading the offsets of {tp.topic}[{tp.partition}]",
                       lambda: consumer.get_watermark_offsets(tp, timeout=settings.kafka_timeout_s))
