"""Kafka checks who writes: on the real (secured) broker, each part's principal reaches only the topics its ACLs
name, a client without a login reaches nothing, and the passwords live in files only their owner reads."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from core.settings import Settings
from topics.access import PART_ACCESS
from topics.catalog import CATALOG
from topics.connection import client_config, topic_name
from topics.credentials import PARTS, credentials_file, login
from topics.errors import DeliveryError
from topics.events import Event
from topics.producer import EventProducer

pytestmark = pytest.mark.kafka
Catalog = Callable[..., Settings]
# a principal without READ (hence without DESCRIBE) on a topic is refused, or is not even shown that it exists
DENIED = {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError._UNKNOWN_PARTITION, KafkaError._UNKNOWN_TOPIC,
          KafkaError.UNKNOWN_TOPIC_OR_PART}


@pytest.fixture
def secured(catalog: Catalog) -> Settings:
    settings = catalog()
    if login(settings) is None:
        pytest.skip("the session broker runs without authentication (CDA_KAFKA_BOOTSTRAP or testcontainers)")
    return settings


def _as(settings: Settings, principal: str) -> Settings:
    return settings.model_copy(update={"kafka_principal": principal})


def _key_issued(company: str) -> Event:
    return Event.new("company_key_issued", company, key_id=f"k{uuid.uuid4().hex[:8]}", salt="s", key_hash="h")


def _produce(settings: Settings, event: Event) -> None:
    with EventProducer(settings, **{"message.timeout.ms": 5000}) as producer:
        producer.produce(event)
        producer.flush(timeout_s=10)


def _read_error(settings: Settings, name: str) -> KafkaError | None:
    """The error reading `name` gets (its offsets first, then its records), or None when it reads."""
    consumer = Consumer(client_config(settings, **{"group.id": f"auth-{uuid.uuid4()}", "enable.auto.commit": False}))
    try:
        tp = TopicPartition(topic_name(settings, name), 0, 0)
        try:
            consumer.get_watermark_offsets(tp, timeout=10)
        except KafkaException as exc:
            return exc.args[0]
        consumer.assign([tp])
        msg = consumer.poll(2)
        return msg.error() if msg is not None else None
    finally:
        consumer.close()


def test_only_the_api_and_the_operator_write_company_keys(secured: Settings) -> None:
    for principal in ("api", "operator"):
        _produce(_as(secured, principal), _key_issued("acme"))
    for principal in ("agents", "trainer", "inference", "projections"):
        with pytest.raises(DeliveryError, match="authorization failed"):
            _produce(_as(secured, principal), _key_issued("acme"))


def test_each_part_reads_only_its_topics(secured: Settings) -> None:
    _produce(secured, Event.new("data_process_requested", "acme", request_id="r1", job_id="j1", task="t", payload_json="{}"))
    assert _read_error(_as(secured, "agents"), "company_data") is None
    assert _read_error(_as(secured, "projections"), "company_data") is None
    for principal, name in (("inference", "company_data"), ("agents", "company_keys"), ("trainer", "company_keys"),
                            ("projections", "company_keys"), ("inference", "company_data_keys")):
        denied = _read_error(_as(secured, principal), name)
        assert denied is not None and denied.code() in DENIED, (principal, name, denied)


def test_the_agents_write_their_job_log_but_not_the_adapters_served(secured: Settings) -> None:
    _produce(_as(secured, "agents"), Event.new("job_accepted", "acme", job_id="j1", request_id="r1", task="t"))
    with pytest.raises(DeliveryError, match="authorization failed"):
        _produce(_as(secured, "agents"), Event.new("adapter_activated", "acme", version="v1", served_name="acme@lora",
                                                   uri="file:///a", base_model="/m", rank=8))


def test_a_client_without_a_login_or_with_a_wrong_password_reaches_nothing(secured: Settings) -> None:
    base = client_config(secured)
    for config in ({k: v for k, v in base.items() if not k.startswith(("sasl.", "security."))},
                   {**base, "sasl.password": "not-the-password"}):
        producer = Producer({**config, "message.timeout.ms": 4000})
        failures: list[KafkaError] = []
        producer.produce(topic_name(secured, "company_keys"), b"x", key=b"acme/k",
                         on_delivery=lambda err, _msg, seen=failures: seen.append(err))
        producer.flush(10)
        assert failures and failures[0] is not None, "a record went through without a valid login"


def test_the_acls_follow_the_access_table(secured: Settings) -> None:
    from confluent_kafka.admin import AclBindingFilter, AclOperation, AclPermissionType, ResourcePatternType, ResourceType

    from topics.connection import admin_client

    admin = admin_client(secured)
    found = admin.describe_acls(AclBindingFilter(ResourceType.TOPIC, None, ResourcePatternType.ANY, None, None,
                                                 AclOperation.ANY, AclPermissionType.ANY)).result(10)
    mine = {(b.principal, b.name, b.operation) for b in found if b.name.startswith(secured.topic_prefix)}
    for part in PARTS:
        for spec in CATALOG:
            name = topic_name(secured, spec.name)
            assert ((f"User:{part}", name, AclOperation.WRITE) in mine) == (spec.name in PART_ACCESS[part].writes)
            assert ((f"User:{part}", name, AclOperation.READ) in mine) == (spec.name in PART_ACCESS[part].reads)
    assert not any(p == "User:agents" and n.endswith("company_keys") for p, n, _ in mine)


def test_passwords_and_the_broker_config_are_readable_by_their_owner_only(secured: Settings) -> None:
    path: Path = credentials_file(secured)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    config = path.parent / "server.properties"
    if config.exists():
        assert stat.S_IMODE(os.stat(config).st_mode) == 0o600


def test_the_projections_may_read_every_topic_their_views_fold() -> None:
    from projections.catalog import PROJECTIONS

    folded = {name for projection in PROJECTIONS.values() for name in projection.topics}
    assert folded <= PART_ACCESS["projections"].reads, folded - PART_ACCESS["projections"].reads
    assert "company_keys" not in PART_ACCESS["projections"].reads
