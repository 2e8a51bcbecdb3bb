"""Reprocessing: copy a range of a topic into another topic, or move a consumer group back in the log."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, Message, TopicPartition

from core.settings import Settings
from topics.catalog import topic as catalog_topic
from topics.connection import (
    admin_client,
    broker_call,
    client_config,
    cluster_metadata,
    drop_reached,
    fetch_batch,
    topic_name,
    watermarks,
)
from topics.errors import TopicsError, UnknownTopic
from topics.partitioning import partition_for
from topics.positions import Position, resolve
from topics.producer import EventProducer

REPLAYED_FROM_HEADER = "cda.replayed_from"
Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class ReplayRange:
    """Records of `source` from `start` up to (not including) `stop`; `stop=None` means today's end."""

    source: str
    start: Position
    stop: Position | None = None


def range_bounds(settings: Settings, consumer: Consumer, name: str, start: Position, stop: Position | None = None,
                 key: bytes | None = None) -> list[tuple[TopicPartition, int]]:
    """For every partition of catalog topic `name` (or only the one `key` lands in): the first offset at
    `start` and the end offset (exclusive) at `stop` (default today's end), clamped to what the log holds."""
    catalog_topic(name)
    topic = topic_name(settings, name)
    try:  # the consumer's own connection: no new client per call
        meta = consumer.list_topics(topic, timeout=settings.kafka_timeout_s)
    except KafkaException:
        meta = cluster_metadata(settings, topic=topic)  # raises BrokerUnavailable naming the address
    if topic not in meta.topics or meta.topics[topic].error is not None:
        raise UnknownTopic(f"topic {topic} does not exist on {settings.kafka_bootstrap}")
    partitions = sorted(meta.topics[topic].partitions)
    if key is not None:
        partitions = [partition_for(key, len(partitions))]
    timeout = settings.kafka_timeout_s
    starts = broker_call(settings, f"finding {start} in {topic}", lambda: resolve(consumer, topic, partitions, start, timeout))
    stops = broker_call(settings, f"finding the end of the range in {topic}",
                        lambda: resolve(consumer, topic, partitions, stop or Position.end(), timeout))
    out = []
    for first_at, stop_at in zip(starts, stops, strict=True):
        low, high = watermarks(settings, consumer, TopicPartition(topic, first_at.partition))
        first = low if first_at.offset < 0 else max(first_at.offset, low)
        last = high if stop_at.offset < 0 else min(stop_at.offset, high)
        out.append((TopicPartition(topic, first_at.partition, first), last))
    return out


def batches_in(consumer: Consumer, bounds: list[tuple[TopicPartition, int]], timeout_s: float,
               batch_size: int = 500) -> Iterator[list[Message]]:
    """Assign the bounded partitions and yield batches of their records inside the bounds, until every
    partition reached its end (gaps left by compaction included)."""
    todo = [(tp, end) for tp, end in bounds if end > tp.offset]
    ends = {(tp.topic, tp.partition): end for tp, end in todo}
    consumer.assign([tp for tp, _ in todo])
    while ends:
        batch = fetch_batch(consumer, batch_size, timeout_s)
        if not batch:
            drop_reached(consumer, ends)
        inside = []
        for msg in batch:
            key = (msg.topic(), msg.partition())
            end = ends.get(key)
            if msg.error() is not None or end is None or msg.offset() >= end:
                continue
            if msg.offset() + 1 >= end:
                del ends[key]
            inside.append(msg)
        yield inside


def range_size(bounds: list[tuple[TopicPartition, int]]) -> int:
    return sum(max(end - tp.offset, 0) for tp, end in bounds)


def replay_to_topic(settings: Settings, rng: ReplayRange, target: str, progress: Progress | None = None) -> int:
    """Copy the range's records (keys, values, headers unchanged) into `target`; returns how many."""
    consumer = Consumer(client_config(settings, **{"group.id": f"cda-replay-{uuid.uuid4()}", "enable.auto.commit": False}))
    try:
        bounds = range_bounds(settings, consumer, rng.source, rng.start, rng.stop)
        total = range_size(bounds)
        copied = 0
        with EventProducer(settings) as producer:
            for batch in batches_in(consumer, bounds, settings.kafka_timeout_s):
                for msg in batch:
                    origin = f"{msg.topic()}/{msg.partition()}/{msg.offset()}".encode()
                    headers = [*(msg.headers() or []), (REPLAYED_FROM_HEADER, origin)]
                    producer.produce_raw(topic_name(settings, target), msg.key(), msg.value(), headers)
                    copied += 1
                if progress is not None and batch:
                    progress(copied, total)
        return copied
    finally:
        consumer.close()


def rewind_group(settings: Settings, group: str, rng: ReplayRange) -> dict[int, int]:
    """Set `group`'s committed offsets on the range's topic to its start, so the group reprocesses it.

    Kafka refuses this while the group has live members: stop its consumers first.
    """
    consumer = Consumer(client_config(settings, **{"group.id": f"cda-replay-{uuid.uuid4()}", "enable.auto.commit": False}))
    try:
        bounds = range_bounds(settings, consumer, rng.source, rng.start, rng.stop)
    finally:
        consumer.close()
    admin = admin_client(settings)
    request = ConsumerGroupTopicPartitions(group, [tp for tp, _ in bounds])
    future = admin.alter_consumer_group_offsets([request], request_timeout=settings.kafka_timeout_s)[group]
    try:
        future.result(settings.kafka_timeout_s)
    except KafkaException as exc:
        raise TopicsError(f"cannot move consumer group {group!r}: {exc.args[0].str() if exc.args else exc} "
                          "(a group with running consumers must be stopped first)") from exc
    return {tp.partition: tp.offset for tp, _ in bounds}
