"""A job's own recorded events, read back from `company_automation_jobs`: the state a resumed job folds.

A job's events all lie after its request was made, in the partition of its company (the record key), so
the reader scans that one partition (`topics.partitioning`) from the request's time (less a margin for
clock skew between producers) to the end, decoding only records whose key is the company."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from confluent_kafka import Consumer

from cda.settings import Settings
from topics.connection import client_config
from topics.events import Event
from topics.positions import Position
from topics.replay import batches_in, range_bounds
from topics.serde import Serde, serde_from

CLOCK_SKEW = timedelta(seconds=60)


class JobLog:
    """Reads one job's events; one instance per worker (it holds a consumer used by assignment only)."""

    def __init__(self, settings: Settings, serde: Serde | None = None) -> None:
        self.settings = settings
        self.serde = serde or serde_from(settings)
        self._consumer = Consumer(client_config(settings, **{"group.id": f"cda-job-log-{uuid.uuid4()}",
                                                             "enable.auto.commit": False,
                                                             "fetch.wait.max.ms": 10}))

    def history(self, company_id: str, job_id: str, requested_at_ms: int) -> list[Event]:
        since = datetime.fromtimestamp(requested_at_ms / 1000, tz=timezone.utc) - CLOCK_SKEW
        key = company_id.encode()
        bounds = range_bounds(self.settings, self._consumer, "company_automation_jobs", Position.at_time(since), key=key)
        found: list[Event] = []
        for batch in batches_in(self._consumer, bounds, self.settings.kafka_timeout_s, batch_size=2_000):
            for msg in batch:
                if msg.key() != key:
                    continue
                try:
                    event = self.serde.decode(msg.value() or b"", msg.topic())
                except Exception:  # noqa: BLE001 - undecodable records were dead-lettered by the projections
                    continue
                if event.data.get("job_id") == job_id:
                    found.append(event)
        return found

    def close(self) -> None:
        self._consumer.close()
