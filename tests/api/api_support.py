"""What the API tests share: the API on the real broker and chDB (projections in the same process, as
`cda api serve` runs them), companies with keys, clients, and reading topics back raw or as events."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx

from api.keys import issue_key
from api.server import running_api
from core.settings import Settings
from projections.store import ProjectionStore
from tests.helpers import eventually, free_port
from topics.consumer import EventConsumer
from topics.dead_letters import Skipped
from topics.events import Event
from topics.positions import Position
from topics.producer import EventProducer
from topics.replay import batches_in, range_bounds


@dataclass
class ApiStack:
    settings: Settings
    url: str
    store: ProjectionStore

    def company(self, name: str | None = None) -> tuple[str, str]:
        """A new company and its key, once the API knows the key."""
        company = name or f"co-{uuid.uuid4().hex[:8]}"
        issued = issue_key(company)
        produce(self.settings, [issued.event])
        eventually(lambda: httpx.get(f"{self.url}/company-automation/tools", headers=auth(issued.key)).status_code == 200,
                   30, f"the API knowing {company}'s key")
        return company, issued.key

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=auth(key), timeout=30)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def produce(settings: Settings, events: list[Event]) -> None:
    with EventProducer(settings) as producer:
        for event in events:
            producer.produce(event)


def events_of(settings: Settings, topic: str) -> list[Event]:
    with EventConsumer(settings, f"t-{uuid.uuid4()}", dead_letters=Skipped()) as consumer:
        consumer.assign(topic, Position.beginning(), until_end=True)
        return [r.event for r in consumer]


def raw_values(settings: Settings, topic: str) -> list[bytes]:
    """Every record's key and value bytes on a topic, undecoded (for scans)."""
    from confluent_kafka import Consumer

    from topics.connection import client_config

    consumer = Consumer(client_config(settings, **{"group.id": f"t-{uuid.uuid4()}", "enable.auto.commit": False}))
    try:
        out: list[bytes] = []
        bounds = range_bounds(settings, consumer, topic, Position.beginning())
        for batch in batches_in(consumer, bounds, settings.kafka_timeout_s):
            out.extend((m.key() or b"") + b"|" + (m.value() or b"") for m in batch)
        return out
    finally:
        consumer.close()


def api_stack(settings_for: Callable[[], Settings], store: ProjectionStore, **overrides: object) -> Iterator[ApiStack]:
    base = settings_for()
    settings = Settings.model_validate({**base.model_dump(), **overrides}) if overrides else base
    with running_api(settings, free_port(), store=store) as url:
        yield ApiStack(settings, url, store)

