"""Reprocessing: copy a range of a topic into another topic, or move a consumer group back in the log."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka import ConsumerGroupTopicPartitions

from cda.settings import Settings
from topics.catalog import topic as catalog_topic
from topics.connection import admin_client, client_config, cluster_metadata, drop_reached, fetch_batch, topic_name
from topics.errors import TopicsError, UnknownTopic
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


def _bounds(settings: Settings, consumer: Consumer, rng: ReplayRange) -> list[tuple[TopicPartition, int]]:
    catalog_topic(rng.source)
    topic = topic_name(settings, rng.source)
    meta = cluster_metadata(settings, topic=topic)
    if topic not in meta.topics or meta.topics[topic].error is not None:
        raise UnknownTopic(f"topic {topic} does not exist on {settings.kafka_bootstrap}")
    partitions = sorted(meta.topics[topic].partitions)
    timeout = settings.kafka_timeout_s
    starts = resolve(consumer, topic, partitions, rng.start, timeout)
    stops = resolve(consumer, topic, partitions, rng.stop or Position.end(), timeout)
    out = []
    for start, stop in zip(starts, stops):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, start.partition), timeout=timeout)
        first = low if start.offset < 0 else max(start.offset, low)
        last = high if stop.offset < 0 else min(stop.offset, high)
        out.append((TopicPartition(topic, start.partition, first), last))
    return out


def replay_to_topic(settings: Settings, rng: ReplayRange, target: str, progress: Progress | None = None) -> int:
    """Copy the range's records (keys, values, headers unchanged) into `target`; returns how many."""
    consumer = Consumer(client_config(settings, **{"group.id": f"cda-replay-{uuid.uuid4()}", "enable.auto.commit": False}))
    try:
        bounds = [(tp, end) for tp, end in _bounds(settings, consumer, rng) if end > tp.offset]
        total = sum(end - tp.offset for tp, end in bounds)
        if not bounds:
            return 0
        ends = {(tp.topic, tp.partition): end for tp, end in bounds}
        consumer.assign([tp for tp, _ in bounds])
        copied = 0
        with EventProducer(settings) as producer:
            while ends:
                batch = fetch_batch(consumer, 500, settings.kafka_timeout_s)
                if not batch:
                    drop_reached(consumer, ends)
                for msg in batch:
                    if msg.error() is not None:
                        continue
                    end = ends.get((msg.topic(), msg.partition()))
                    if end is None or msg.offset() >= end:
                        continue
                    origin = f"{msg.topic()}/{msg.partition()}/{msg.offset()}".encode()
                    headers = [*(msg.headers() or []), (REPLAYED_FROM_HEADER, origin)]
                    producer.produce_raw(topic_name(settings, target), msg.key(), msg.value(), headers)
                    copied += 1
                    if msg.offset() + 1 >= end:
                        del ends[(msg.topic(), msg.partition())]
                    if progress is not None:
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
        bounds = _bounds(settings, consumer, rng)
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
