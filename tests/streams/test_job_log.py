"""A job's history read back from the log: all of its events and only its own, the end of an ended job, and
a backlog read once — each history reads only what was written since the last one."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from core.settings import Settings
from streams.job_log import JobLog
from topics.events import Event
from topics.producer import EventProducer

pytestmark = pytest.mark.kafka
Catalog = Callable[..., Settings]


def accepted(company: str, job: str) -> Event:
    return Event.new("job_accepted", company, job_id=job, request_id="r", task="t")


def test_history_is_the_jobs_own_events_and_a_backlog_is_read_once(catalog: Catalog) -> None:
    settings = catalog("company_automation_jobs")
    t0 = int(time.time() * 1000)
    log = JobLog(settings)
    try:
        with EventProducer(settings) as producer:
            for i in range(50):
                producer.produce(accepted("acme", f"j{i}"))
            producer.produce(accepted("globex", "j1"))  # same job id, another company
            producer.produce(Event.new("job_completed", "acme", job_id="j0", steps=0, tool_calls=0, result_json="{}",
                                       latency_ms=1.0))
        first = log.history("acme", "j1", t0)
        assert [(e.company_id, e["job_id"]) for e in first] == [("acme", "j1")]
        assert [e.company_id for e in log.history("globex", "j1", t0)] == ["globex"]
        read = log.records_read
        assert [e.type for e in log.history("acme", "j0", t0)] == ["job_completed"]  # ended: its end only
        assert [e.type for e in log.history("acme", "j7", t0)] == ["job_accepted"]
        assert log.records_read == read  # nothing new on the log: nothing read again
        with EventProducer(settings) as producer:
            producer.produce(Event.new("step_started", "acme", job_id="j1", step=0, model="base"))
        assert [e.type for e in log.history("acme", "j1", t0)] == ["job_accepted", "step_started"]
        assert log.records_read <= read + 2  # only what was written since
    finally:
        log.close()
