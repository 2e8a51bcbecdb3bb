"""Jobs read straight from `company_automation_jobs` (no projection needed): one job's timeline, a
company's jobs, and following a job live until it ends — what `cda jobs` and `cda process --wait` show."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from core.settings import Settings
from streams.job_state import JobState, mutate
from topics.events import Event
from topics.positions import Position
from topics.reads import follow_topic, read_to_end


def _events(settings: Settings, start: Position, follow: bool = False) -> Iterator[Event | None]:
    """Events of the jobs topic from `start`; with `follow`, a None now and then while waiting for more."""
    if follow:
        return follow_topic(settings, "company_automation_jobs", start, "cda-jobs-reader")
    return (r.event for r in read_to_end(settings, "company_automation_jobs", "cda-jobs-reader", start))


def timeline(settings: Settings, job_id: str, since: datetime | None = None) -> list[Event]:
    """Every event of one job, in log order."""
    start = Position.at_time(since) if since else Position.beginning()
    return [e for e in _events(settings, start) if e is not None and e.data.get("job_id") == job_id]


@dataclass
class JobSummary:
    job_id: str
    company_id: str
    task: str = ""
    accepted_at: datetime | None = None
    state: JobState = field(default_factory=JobState)
    error: str = ""

    @property
    def status(self) -> str:
        return self.state.finished or ("running" if self.state.accepted else "queued")


def company_jobs(settings: Settings, company_id: str, since: datetime | None = None) -> list[JobSummary]:
    jobs: dict[str, JobSummary] = {}
    start = Position.at_time(since) if since else Position.beginning()
    for event in _events(settings, start):
        if event is None or event.company_id != company_id:
            continue
        summary = jobs.setdefault(str(event["job_id"]), JobSummary(str(event["job_id"]), company_id))
        if event.type == "job_accepted":
            summary.task, summary.accepted_at = str(event["task"]), event.occurred_at
        if event.type == "job_failed":
            summary.error = f"{event['error_kind']}: {event['error']}"
        mutate(summary.state, event)
    return sorted(jobs.values(), key=lambda j: j.accepted_at or datetime.min.replace(tzinfo=None).astimezone())


def follow_job(settings: Settings, job_id: str, since: datetime, timeout_s: float,
               on_event: Callable[[Event, JobState], None] | None = None) -> JobState:
    """Fold the job's events as they arrive, until it ends or `timeout_s` passes."""
    state = JobState()
    deadline = time.monotonic() + timeout_s
    for event in _events(settings, Position.at_time(since), follow=True):
        if event is not None and event.data.get("job_id") == job_id:
            mutate(state, event)
            if on_event is not None:
                on_event(event, state)
            if state.finished:
                return state
        if time.monotonic() > deadline:
            return state
    return state
