"""A job's own recorded events, read back from `company_automation_jobs`: the state a resumed job folds.

A job's events all lie after its request was made, in the partition of its company (the record key), so
the reader scans that one partition (`topics.partitioning`) from the request's time (less a margin for clock
skew between producers). It keeps an index as it goes — the events of every job still open in the
partitions it has read, and the end of every job it saw end — so the next job's history reads only what was
written since the last scan: a backlog of N requests costs N reads of the log, not N².
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from confluent_kafka import Consumer, TopicPartition

from core.settings import Settings
from topics.connection import client_config, topic_name
from topics.events import Event
from topics.positions import Position
from topics.replay import batches_in, range_bounds
from topics.serde import Serde, serde_from

CLOCK_SKEW = timedelta(seconds=60)
ENDED_KEPT = 100_000  # ends of jobs remembered (a redelivered ended job must not run again)
TERMINAL = frozenset({"job_completed", "job_failed"})


@dataclass
class _PartitionIndex:
    covered_from_ms: int  # every record from this time on has been read up to `next_offset`
    next_offset: int
    open_jobs: dict[tuple[str, str], list[Event]] = field(default_factory=dict)  # (company, job) -> events
    ended: OrderedDict[tuple[str, str], Event] = field(default_factory=OrderedDict)


class JobLog:
    """Reads jobs' events; one instance per worker (it holds a consumer used by assignment only)."""

    def __init__(self, settings: Settings, serde: Serde | None = None) -> None:
        self.settings = settings
        self.serde = serde or serde_from(settings)
        self.topic = topic_name(settings, "company_automation_jobs")
        self._consumer = Consumer(client_config(settings, **{"group.id": f"cda-job-log-{uuid.uuid4()}",
                                                             "enable.auto.commit": False,
                                                             "fetch.wait.max.ms": 10}))
        self._index: dict[int, _PartitionIndex] = {}
        self._lock = threading.Lock()  # jobs run concurrently, each asking from a thread; one consumer serves them
        self.records_read = 0

    def history(self, company_id: str, job_id: str, requested_at_ms: int) -> list[Event]:
        with self._lock:
            return self._history(company_id, job_id, requested_at_ms)

    def _history(self, company_id: str, job_id: str, requested_at_ms: int) -> list[Event]:
        key = company_id.encode()
        since_ms = int((datetime.fromtimestamp(requested_at_ms / 1000, tz=timezone.utc) - CLOCK_SKEW).timestamp() * 1000)
        bounds = range_bounds(self.settings, self._consumer, "company_automation_jobs",
                              Position.end(), key=key)  # the partition and its end now
        partition, end = bounds[0][0].partition, bounds[0][1]
        index = self._index.get(partition)
        if index is None or since_ms < index.covered_from_ms:  # nothing read yet this far back: read from there
            start = range_bounds(self.settings, self._consumer, "company_automation_jobs",
                                 Position.at_time(datetime.fromtimestamp(since_ms / 1000, tz=timezone.utc)), key=key)
            index = self._index[partition] = _PartitionIndex(since_ms, start[0][0].offset)
        self._read(index, partition, end)
        ended = index.ended.get((company_id, job_id))
        return [ended] if ended is not None else list(index.open_jobs.get((company_id, job_id), []))

    def _read(self, index: _PartitionIndex, partition: int, end: int) -> None:
        if index.next_offset >= end:
            return
        bounds = [(TopicPartition(self.topic, partition, index.next_offset), end)]
        for batch in batches_in(self._consumer, bounds, self.settings.kafka_timeout_s, batch_size=2_000):
            for msg in batch:
                self.records_read += 1
                index.next_offset = msg.offset() + 1
                try:
                    event = self.serde.decode(msg.value() or b"", msg.topic())
                except Exception:  # noqa: BLE001 - undecodable records were dead-lettered by the projections
                    continue
                if not isinstance(event.data.get("job_id"), str):
                    continue
                job = (event.company_id, str(event.data["job_id"]))
                if event.type in TERMINAL:
                    index.open_jobs.pop(job, None)
                    index.ended[job] = event
                    if len(index.ended) > ENDED_KEPT:
                        index.ended.popitem(last=False)
                elif job not in index.ended:
                    index.open_jobs.setdefault(job, []).append(event)
        index.next_offset = max(index.next_offset, end)

    def close(self) -> None:
        self._consumer.close()
