"""A consumer of events that decodes with the serde, sends undecodable records to the dead-letter topic
and keeps going, and commits offsets only when asked (after the caller stored its output)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from core.settings import Settings
from topics.catalog import topic as catalog_topic
from topics.connection import broker_call, client_config, cluster_metadata, drop_reached, fetch_batch, topic_name, watermarks
from topics.dead_letters import DeadLetters, Rejected
from topics.errors import (
    BrokerUnavailable,
    CommitFailed,
    EventValidationError,
    SchemaNotFound,
    SerializationError,
    TopicsError,
    UnknownTopic,
)
from topics.events import Event
from topics.positions import Position, resolve
from topics.serde import Serde, serde_from


class RejectSink(Protocol):
    """Where undecodable records go: the dead-letter topic by default, stderr for read-only tools."""

    def send(self, rejected: Rejected) -> None: ...

    def flush(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Received:
    """A decoded event with where it was read from."""

    event: Event
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None = None  # the record as read, so a handler can dead-letter the original bytes


class EventConsumer:
    """Reads catalog topics as events. Either `subscribe` (a consumer group) or `assign` (explicit positions)."""

    def __init__(
        self,
        settings: Settings,
        group_id: str,
        *,
        serde: Serde | None = None,
        dead_letters: RejectSink | None = None,
        **config: Any,
    ) -> None:
        self.settings = settings
        self.group_id = group_id
        self.serde = serde or serde_from(settings)
        self.dead_letters = dead_letters if dead_letters is not None else DeadLetters(settings, group_id)
        self._consumer = Consumer(client_config(
            settings,
            **{
                "group.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 10_000,
                "heartbeat.interval.ms": 1_000,
                **config,
            },
        ))
        self._ends: dict[tuple[str, int], int] = {}
        self._bounded = False
        self._carries: dict[str, tuple[str, frozenset[str]]] = {}  # physical topic -> (catalog name, event types)

    # -- where to read ----------------------------------------------------------------------------
    def subscribe(self, names: list[str], on_revoke: Callable[[set[tuple[str, int]]], None] | None = None) -> None:
        """Join the consumer group on these catalog topics; positions come from the group's commits.
        `on_revoke` hears which (topic, partition)s a rebalance takes away, inside `poll`, before they go."""
        self._check_topics(names)
        topics = [topic_name(self.settings, n) for n in names]
        if on_revoke is None:
            self._consumer.subscribe(topics)
            return

        def revoked(_: Consumer, partitions: list[TopicPartition]) -> None:
            on_revoke({(tp.topic, tp.partition) for tp in partitions})
        self._consumer.subscribe(topics, on_revoke=revoked, on_lost=revoked)

    def assign(self, name: str, start: Position, *, until_end: bool = False, follow: bool = False) -> int:
        """Read every partition of one catalog topic from `start`; with `until_end`, stop at today's end.
        With `follow` too, keep reading past it: `finished` then says "caught up with today's end".

        Returns how many records lie between the start and the current end (for progress bars).
        """
        self._check_topics([name])
        topic = topic_name(self.settings, name)
        meta = cluster_metadata(self.settings, topic=topic)
        partitions = sorted(meta.topics[topic].partitions)
        timeout = self.settings.kafka_timeout_s
        assigned: list[TopicPartition] = []
        total = 0
        resolved = broker_call(self.settings, f"finding {start} in {topic}",
                               lambda: resolve(self._consumer, topic, partitions, start, timeout))
        for tp in resolved:
            low, high = watermarks(self.settings, self._consumer, TopicPartition(topic, tp.partition))
            first = low if tp.offset < 0 else tp.offset
            total += max(high - first, 0)
            if until_end:
                if high <= first and not follow:
                    continue  # nothing to read in this partition
                if high > first:
                    self._ends[(topic, tp.partition)] = high
            assigned.append(tp)
        self._bounded = until_end
        self._consumer.assign(assigned)
        return total

    @property
    def finished(self) -> bool:
        """With `assign(..., until_end=True)`: whether every partition reached the end it had at the start."""
        return self._bounded and not self._ends

    # -- reading ----------------------------------------------------------------------------------
    def poll(self, timeout_s: float = 1.0, max_records: int = 500) -> list[Received]:
        """A batch of decoded events; undecodable records go to the dead-letter topic instead."""
        out: list[Received] = []
        batch = fetch_batch(self._consumer, max_records, timeout_s)
        if not batch:
            drop_reached(self._consumer, self._ends)
        for msg in batch:
            if msg.error() is not None:
                self._raise_or_skip(msg.error())
                continue
            self._track_end(msg)
            value = msg.value()
            if value is None and msg.key() is not None:
                continue  # a tombstone (compacted topics: a deleted entry's key) is not an event
            try:
                event = self.serde.decode(value or b"", msg.topic())
                self._check_belongs(event, msg.topic())
                event.check()
            except (SerializationError, SchemaNotFound, EventValidationError) as exc:
                self.dead_letters.send(Rejected.of(msg, exc))
                continue
            timestamp = msg.timestamp()[1]
            out.append(Received(event, msg.topic(), msg.partition(), msg.offset(), timestamp, msg.key(), value))
        return out

    def __iter__(self) -> Iterator[Received]:
        """Events until `finished` (assigned until the end) — forever when subscribed."""
        while not self.finished:
            yield from self.poll()

    def positions(self) -> dict[tuple[str, int], int]:
        """The next offset this consumer reads, per assigned partition it has read from."""
        return {(tp.topic, tp.partition): tp.offset for tp in self._consumer.position(self._consumer.assignment())
                if tp.offset >= 0}

    def commit(self, offsets: dict[tuple[str, int], int] | None = None) -> None:
        """Flush dead letters, then commit `offsets` (topic, partition -> next offset to read), or the positions
        of everything polled so far (synchronously)."""
        self.dead_letters.flush()
        try:
            if offsets is not None:
                if offsets:
                        self._consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                                          asynchronous=False)
                return
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            if error is not None and error.code() == KafkaError._NO_OFFSET:
                return  # nothing consumed since the last commit
            # broker gone, group rebalanced or member expired: re-join; the uncommitted records come back
            raise CommitFailed(f"group {self.group_id} could not commit on {self.settings.kafka_bootstrap}: "
                               f"{error.str() if error is not None else exc}") from exc

    def close(self) -> None:
        self.dead_letters.flush()
        self._consumer.close()

    def __enter__(self) -> EventConsumer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def raw(self) -> Consumer:
        """The underlying confluent-kafka consumer, for offset work (replay, lag)."""
        return self._consumer

    # -- internals --------------------------------------------------------------------------------
    def _check_topics(self, names: list[str]) -> None:
        for name in names:
            catalog_topic(name)  # raises UnknownTopic for names outside the catalog
        meta = cluster_metadata(self.settings)
        missing = [n for n in names if topic_name(self.settings, n) not in meta.topics]
        if missing:
            raise UnknownTopic(f"topic(s) {', '.join(missing)} do not exist on {self.settings.kafka_bootstrap}; "
                               "run `cda topics apply`")

    def _check_belongs(self, event: Event, physical: str) -> None:
        """An event of a type its topic does not carry is as wrong as bytes that are no event."""
        allowed = self._carries.get(physical)
        if allowed is None:
            name = physical.removeprefix(self.settings.topic_prefix)
            try:
                allowed = self._carries[physical] = (name, frozenset(catalog_topic(name).event_types))
            except UnknownTopic:  # a topic outside the catalog (a scratch copy): nothing to check against
                allowed = self._carries[physical] = (name, frozenset())
        name, types = allowed
        if types and event.type not in types:
            raise SerializationError(f"a {event.type} event does not belong on topic {name} "
                                     f"(it carries {', '.join(sorted(types))})")

    def _track_end(self, msg: Message) -> None:
        key = (msg.topic(), msg.partition())
        end = self._ends.get(key)
        if end is not None and msg.offset() + 1 >= end:
            del self._ends[key]

    def _raise_or_skip(self, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            return
        if error.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
            raise BrokerUnavailable(f"lost the Kafka broker at {self.settings.kafka_bootstrap}: {error.str()}")
        if error.fatal():
            raise TopicsError(f"fatal consumer error on {self.settings.kafka_bootstrap}: {error.str()}")

