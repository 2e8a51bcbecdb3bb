"""The event backbone on a real Kafka broker: produce, consume, configs, replay, dead letters."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest
from confluent_kafka import Consumer, TopicPartition

from core.settings import Settings
from topics.admin import apply_catalog, describe_configs
from topics.catalog import topic
from topics.connection import admin_client, client_config, topic_name
from topics.consumer import EventConsumer, Received
from topics.events import Event
from topics.positions import Position
from topics.producer import EventProducer
from topics.replay import ReplayRange, batches_in, range_bounds, replay_to_topic, rewind_group
from topics.serde import SingleObjectSerde

pytestmark = pytest.mark.kafka
Catalog = Callable[..., Settings]


def jobs(company: str, n: int, tag: str = "") -> list[Event]:
    return [Event.new("job_accepted", company, job_id=f"{tag}{company}-{i}", request_id=f"r{i}", task=f"task {i}")
            for i in range(n)]


def read_all(settings: Settings, name: str, start: Position | None = None) -> list[Received]:
    with EventConsumer(settings, f"reader-{uuid.uuid4()}") as consumer:
        consumer.assign(name, start or Position.beginning(), until_end=True)
        return list(consumer)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def read_copied(settings: Settings, name: str) -> list[str]:
    """Job ids of records copied byte for byte into a topic that does not carry their type (read raw)."""
    serde = SingleObjectSerde()
    consumer = Consumer(client_config(settings, **{"group.id": f"raw-{uuid.uuid4()}", "enable.auto.commit": False}))
    try:
        bounds = range_bounds(settings, consumer, name, Position.beginning())
        return [serde.decode(m.value()).data["job_id"] for batch in batches_in(consumer, bounds, 10) for m in batch]
    finally:
        consumer.close()


def test_events_round_trip_and_a_company_keeps_one_partition(catalog: Catalog) -> None:
    settings = catalog("company_automation_jobs", "dead_letters")
    sent = jobs("acme", 20) + jobs("globex", 20)
    with EventProducer(settings) as producer:
        producer.produce_many(sent)
    assert producer.delivered == 40
    got = read_all(settings, "company_automation_jobs")
    assert sorted(r.event.event_id for r in got) == sorted(e.event_id for e in sent)
    by_company: dict[str, set[int]] = {}
    for r in got:
        by_company.setdefault(r.event.company_id, set()).add(r.partition)
        assert r.key == r.event.company_id.encode()
    assert all(len(parts) == 1 for parts in by_company.values())
    acme = [r.event.data["job_id"] for r in sorted(got, key=lambda r: r.offset) if r.event.company_id == "acme"]
    assert acme == [f"acme-{i}" for i in range(20)]  # a company's events stay in order


def test_apply_is_idempotent_sets_compaction_and_repairs_drift(catalog: Catalog) -> None:
    settings = catalog()
    again = apply_catalog(settings)
    assert {c.action for c in again} == {"ok"}
    admin = admin_client(settings)
    tools = topic_name(settings, "company_tools")
    configs = describe_configs(admin, tools, 10)
    assert configs["cleanup.policy"] == "compact"
    jobs_configs = describe_configs(admin, topic_name(settings, "company_automation_jobs"), 10)
    assert jobs_configs["cleanup.policy"] == "delete" and jobs_configs["retention.ms"] == "-1"
    meta = admin.list_topics(timeout=10)
    assert len(meta.topics[topic_name(settings, "company_data")].partitions) == topic("company_data").partitions
    # Someone changes a topic by hand: apply brings it back to the catalog.
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
    resource = ConfigResource(ResourceType.TOPIC, tools, incremental_configs=[
        ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([resource])[resource].result(10)
    repaired = {c.topic: c for c in apply_catalog(settings)}
    assert repaired[tools].action == "updated" and "cleanup.policy=compact" in repaired[tools].detail
    assert describe_configs(admin, tools, 10)["cleanup.policy"] == "compact"


def test_undecodable_records_go_to_dead_letters_and_the_consumer_goes_on(catalog: Catalog) -> None:
    settings = catalog("company_automation_jobs", "dead_letters")
    name = topic_name(settings, "company_automation_jobs")
    with EventProducer(settings) as producer:
        producer.produce(jobs("acme", 1)[0])
        producer.produce_raw(name, b"acme", b"not avro at all")
        producer.produce_raw(name, b"acme", b"\xc3\x01" + b"\x11" * 8 + b"body")
        producer.produce(jobs("acme", 2, tag="after-")[1])
    group = f"worker-{uuid.uuid4()}"
    with EventConsumer(settings, group) as consumer:
        consumer.subscribe(["company_automation_jobs"])
        got: list[Received] = []
        deadline = time.monotonic() + 30
        while len(got) < 2 and time.monotonic() < deadline:
            got += consumer.poll(1.0)
        consumer.commit()
    assert [r.event.data["job_id"] for r in got] == ["acme-0", "after-acme-1"]
    letters = read_all(settings, "dead_letters")
    assert len(letters) == 2
    first, second = sorted((r.event for r in letters), key=lambda e: e.data["source_offset"])
    assert first.company_id == "acme"
    assert first.data["source_topic"] == name and first.data["source_offset"] == 1
    assert first.data["payload"] == b"not avro at all" and "marker" in first.data["reason"]
    assert second.data["source_offset"] == 2 and "fingerprint" in second.data["reason"]
    assert first.data["consumer_group"] == group
    # The offsets were committed past the bad records: a restarted worker does not meet them again.
    check = Consumer(client_config(settings, **{"group.id": group}))
    committed = check.committed([TopicPartition(name, p) for p in range(topic("company_automation_jobs").partitions)], timeout=10)
    check.close()
    assert max(tp.offset for tp in committed) == 4


def test_consume_from_an_offset_and_from_a_time(catalog: Catalog) -> None:
    settings = catalog("company_automation_jobs")
    middle = datetime.now(timezone.utc)
    with EventProducer(settings) as producer:
        producer.produce_many(jobs("acme", 5, tag="old-"), timestamp_ms=_ms(middle - timedelta(seconds=60)))
        producer.produce_many(jobs("acme", 3, tag="new-"), timestamp_ms=_ms(middle))
    from_offset = read_all(settings, "company_automation_jobs", Position.at_offset(6))
    assert [r.event.data["job_id"] for r in from_offset] == ["new-acme-1", "new-acme-2"]
    since = read_all(settings, "company_automation_jobs", Position.at_time(middle))
    assert [r.event.data["job_id"] for r in since] == ["new-acme-0", "new-acme-1", "new-acme-2"]
    assert read_all(settings, "company_automation_jobs", Position.end()) == []


def test_replay_copies_a_range_into_a_target_topic(catalog: Catalog) -> None:
    settings = catalog("company_automation_jobs", "company_data")
    cut = datetime.now(timezone.utc)
    with EventProducer(settings) as producer:
        producer.produce_many(jobs("acme", 4, tag="a-"), timestamp_ms=_ms(cut - timedelta(seconds=60)))
        producer.produce_many(jobs("acme", 3, tag="b-"), timestamp_ms=_ms(cut))
    # company_data is a catalog topic with another event type; replay copies bytes, whatever the target.
    seen: list[tuple[int, int]] = []
    copied = replay_to_topic(settings, ReplayRange("company_automation_jobs", Position.at_time(cut)), "company_data",
                             lambda done, total: seen.append((done, total)))
    assert copied == 3 and seen[-1] == (3, 3)
    assert read_copied(settings, "company_data") == ["b-acme-0", "b-acme-1", "b-acme-2"]
    by_offset = replay_to_topic(
        settings, ReplayRange("company_automation_jobs", Position.at_offset(1), Position.at_offset(3)), "company_data")
    assert by_offset == 2
    assert read_copied(settings, "company_data")[3:] == ["a-acme-1", "a-acme-2"]


def test_rewinding_a_group_makes_it_reprocess(catalog: Catalog) -> None:
    settings = catalog("company_automation_jobs", "dead_letters")
    with EventProducer(settings) as producer:
        producer.produce_many(jobs("acme", 6))
    group = f"projection-{uuid.uuid4()}"

    def drain() -> list[str]:
        ids: list[str] = []
        with EventConsumer(settings, group) as consumer:
            consumer.subscribe(["company_automation_jobs"])
            deadline = time.monotonic() + 15
            idle = 0
            while time.monotonic() < deadline and idle < 3:
                batch = consumer.poll(1.0)
                idle = idle + 1 if not batch else 0
                ids += [r.event.data["job_id"] for r in batch]
            consumer.commit()
        return ids

    assert len(drain()) == 6
    assert drain() == []
    moved = rewind_group(settings, group, ReplayRange("company_automation_jobs", Position.at_offset(4)))
    assert 4 in moved.values()
    assert drain() == ["acme-4", "acme-5"]
