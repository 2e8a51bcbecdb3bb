"""The API's reads, every one filtered by the caller's company: jobs (the `job_events` projection folded with
`streams.job_state`), adapters and training requests (`lora_adapters`), memory (`company_memory`).

Nothing here folds events inline beyond one job's own timeline; a company's rows are the only rows a query
can return, so another company's id reads exactly like an id that does not exist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from projections.store import ProjectionStore
from streams.job_state import JobState, mutate
from topics.events import Event


@dataclass
class JobView:
    """One job as its events tell it."""

    job_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    state: JobState = field(default_factory=JobState)


def job_events(store: ProjectionStore, company_id: str, job_id: str) -> list[dict[str, Any]]:
    """The job's events in order (the request first), as JSON dicts."""
    rows = store.query(
        "SELECT event_json FROM job_events WHERE company_id = {company:String} AND job_id = {job:String} "
        "ORDER BY event_type != 'data_process_requested', occurred_at, src_topic, src_offset, event_id "
        "LIMIT 100000", {"company": company_id, "job": job_id})
    return [json.loads(row[0]) for row in rows]


def job_view(store: ProjectionStore, company_id: str, job_id: str) -> JobView | None:
    events = job_events(store, company_id, job_id)
    if not events:
        return None
    view = JobView(job_id, events)
    for data in events:
        if data["type"] != "data_process_requested":
            mutate(view.state, Event(data["type"], data))
    return view


def jobs_existing(store: ProjectionStore, company_id: str, job_ids: list[str]) -> dict[str, str]:
    """Which of `job_ids` the store has, each with its request's hash ("" when not recorded): one query for
    many (a chDB query costs ~3 ms of CPU whatever it asks)."""
    rows = store.query("SELECT job_id, anyIf(JSONExtractString(event_json, 'request_hash'), "
                       "event_type = 'data_process_requested') FROM job_event_facts "
                       "WHERE company_id = {company:String} AND job_id IN {jobs:Array(String)} GROUP BY job_id",
                       {"company": company_id, "jobs": job_ids})
    return {str(row[0]): str(row[1] or "") for row in rows}


JOB_ORDER = {"newest": "requested_at DESC, job_id DESC", "oldest": "requested_at, job_id"}


def jobs_page(store: ProjectionStore, company_id: str, *, status: str | None, session_id: str | None,
              since: datetime | None, limit: int, offset: int, order: str) -> tuple[list[dict[str, Any]], int]:
    """A page of the company's jobs (queued ones too) and how many match in all."""
    where = ["company_id = {company:String}"]
    params: dict[str, Any] = {"company": company_id, "limit": limit, "offset": offset}
    if status:
        where.append("status = {status:String}")
        params["status"] = status
    if session_id:
        where.append("session_id = {session:String}")
        params["session"] = session_id
    if since:
        where.append("requested_at >= {since:DateTime64(3, 'UTC')}")
        params["since"] = since.replace(tzinfo=None) if since.tzinfo is None else since
    clause = " AND ".join(where)
    rows = store.query_dicts(f"SELECT job_id, request_id, session_id, task, status, requested_at, finished_at, tool_calls, right "
                             f"FROM job_requests WHERE {clause} ORDER BY {JOB_ORDER[order]} "
                             f"LIMIT {{limit:UInt32}} OFFSET {{offset:UInt64}}", params)
    total = store.query(f"SELECT count() FROM job_requests WHERE {clause}", params)[0][0]
    return rows, int(total)


ADAPTER_COLUMNS = ("request_id, version, status, active, base_model, rank, eval_metrics, baseline_metrics, progress_step, "
                   "progress_total, last_loss, error, error_kind, reason, created_at, ready_at, activated_at")


def adapter_runs(store: ProjectionStore, company_id: str) -> list[dict[str, Any]]:
    """Every training request and announced version of the company (oldest first), `active` = what is served."""
    return store.query_dicts(f"SELECT {ADAPTER_COLUMNS} FROM lora_adapters WHERE company_id = {{company:String}} "
                             f"ORDER BY created_at, request_id", {"company": company_id})


def training_runs_open(store: ProjectionStore, company_id: str, within_s: float) -> dict[str, str]:
    """The company's training runs by request id, with their status; runs requested more than `within_s` ago
    that never ended are left out (a request the trainer lost must not hold the company's quota for ever)."""
    rows = store.query_dicts("SELECT request_id, status FROM lora_adapters WHERE company_id = {company:String} "
                             "AND (status NOT IN ('requested', 'training') "
                             "OR created_at >= now64(3) - toIntervalSecond({within:UInt32}))",
                             {"company": company_id, "within": int(within_s)})
    return {str(r["request_id"]): str(r["status"]) for r in rows}


def training_run(store: ProjectionStore, company_id: str, request_id: str) -> dict[str, Any] | None:
    rows = store.query_dicts(f"SELECT {ADAPTER_COLUMNS} FROM lora_adapters WHERE company_id = {{company:String}} "
                             f"AND request_id = {{request:String}}", {"company": company_id, "request": request_id})
    return rows[0] if rows else None


def ready_version(store: ProjectionStore, company_id: str, version: str) -> dict[str, Any] | None:
    """The latest `lora_adapter_ready` of this company for `version`: what re-announcing it needs."""
    rows = store.query_dicts(
        "SELECT request_id, adapter_name, version, uri, base_model, rank, dataset_hash, metrics FROM adapter_facts FINAL "
        "WHERE company_id = {company:String} AND version = {version:String} AND event_type = 'lora_adapter_ready' "
        "ORDER BY occurred_at DESC LIMIT 1", {"company": company_id, "version": version})
    return rows[0] if rows else None


def memory_entries(store: ProjectionStore, company_id: str, entry_id: str | None = None) -> list[dict[str, Any]]:
    where = "company_id = {company:String}" + (" AND entry_id = {entry:String}" if entry_id else "")
    return store.query_dicts(f"SELECT entry_id, session_id, kind, content, tags, source_job_id, updated_at "
                             f"FROM company_memory WHERE {where} ORDER BY entry_id LIMIT 10000",
                             {"company": company_id, "entry": entry_id or ""})
