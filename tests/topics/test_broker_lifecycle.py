"""The project's own broker: a restart keeps every event; an unreachable broker fails fast and says where."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from tests.conftest import free_port, local_broker
from topics.admin import apply_catalog
from topics.catalog import CATALOG
from topics.consumer import EventConsumer
from topics.errors import BrokerUnavailable, DeliveryError
from topics.events import Event
from topics.positions import Position
from topics.producer import EventProducer

pytestmark = pytest.mark.kafka


def test_a_restarted_broker_keeps_every_event(tmp_path: Path) -> None:
    broker = local_broker(tmp_path / "kafka")
    broker.start()
    try:
        settings = Settings(home=tmp_path / "home", kafka_bootstrap=broker.bootstrap,
                            kafka_credentials=broker.credentials_file)
        apply_catalog(settings, tuple(s for s in CATALOG if s.name in ("company_memory", "dead_letters")))
        sent = [Event.new("memory_written", "acme", entry_id=f"e{i}", content=f"fact {i}") for i in range(50)]
        with EventProducer(settings) as producer:
            producer.produce_many(sent)
        assert broker.stop() is True
        assert broker.pid() is None and not broker.answers()
        broker.start()
        with EventConsumer(settings, f"after-restart-{uuid.uuid4()}") as consumer:
            consumer.assign("company_memory", Position.beginning(), until_end=True)
            got = [r.event.event_id for r in consumer]
        assert sorted(got) == sorted(e.event_id for e in sent)
    finally:
        broker.stop()


def test_an_unreachable_broker_fails_within_the_bound_naming_the_address() -> None:
    address = f"localhost:{free_port()}"
    settings = Settings(kafka_bootstrap=address, kafka_timeout_s=2)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match=address):
        apply_catalog(settings)
    with pytest.raises(BrokerUnavailable, match=address):
        EventConsumer(settings, "g").assign("company_data", Position.beginning())
    producer = EventProducer(settings)
    producer.produce(Event.new("memory_deleted", "acme", entry_id="e1"))
    with pytest.raises(DeliveryError, match=address):
        producer.flush(timeout_s=3)
    assert time.monotonic() - started < 20


def test_the_cli_fails_fast_on_an_unreachable_broker(cli_for: Callable[..., Callable[..., Any]], tmp_path: Path) -> None:
    address = f"localhost:{free_port()}"
    cli = cli_for(Settings(home=tmp_path, kafka_bootstrap=address, kafka_timeout_s=2))
    for args in (["topics", "apply"], ["consume", "company_data"]):
        started = time.monotonic()
        result = cli(*args)
        assert result.exit_code == 1, result.output
        assert address in result.output
        assert time.monotonic() - started < 15
