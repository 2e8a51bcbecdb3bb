"""The five projections of cda: jobs, tool calls, tools, adapters and memory."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from projections.errors import UnknownProjection
from projections.model import Fold, Projection
from topics.events import Event
from topics.request_hash import request_hash

JOB_EVENTS = ("job_accepted", "step_started", "tool_call_requested", "tool_call_completed", "tool_call_failed",
              "unit_ended", "job_completed", "job_failed")
CALL_EVENTS = ("tool_call_requested", "tool_call_completed", "tool_call_failed")
ADAPTER_EVENTS = ("lora_training_requested", "training_progress", "training_failed", "training_rejected",
                  "lora_adapter_ready", "adapter_refused", "adapter_activated")


def pick(defaults: Mapping[str, Any]) -> Fold:
    """The fold that copies the event's fields that are also columns; the rest take their defaults."""
    return lambda event: {k: event.data[k] for k in defaults if k in event.data}


def _completed(event: Event) -> dict[str, Any]:
    """`job_completed`: how many units failed, from its result (a job with some is `partially_failed`)."""
    try:
        result = json.loads(str(event.data.get("result_json") or "{}"))
    except ValueError:
        result = {}
    return {**pick(_JOB)(event), "units_failed": int(result.get("failed") or 0) if isinstance(result, dict) else 0}


def _rejected(event: Event) -> dict[str, Any]:
    return {**pick(_ADAPTER)(event), "metrics": event.data["candidate_metrics"],
            "baseline_metrics": event.data["current_metrics"]}


def _served(event: Event) -> dict[str, Any]:
    """`adapter_refused` / `adapter_activated`: their request id may be absent (the view finds it by version)."""
    return {**pick(_ADAPTER)(event), "request_id": event.data.get("request_id") or ""}


_JOB = {"job_id": "", "request_id": "", "task": "", "adapter_version": None, "model": "", "units_failed": 0, "step": 0, "latency_ms": 0.0,
        "error": "", "error_kind": ""}
_CALL = {"job_id": "", "call_id": "", "attempt": 1, "step": 0, "tool_name": "", "status_code": None,
         "latency_ms": 0.0, "error": "", "error_kind": "", "retryable": False}
_TOOL = {"tool_name": "", "description": "", "method": "", "url": "", "parameters_schema_json": "",
         "secret_ref": None, "timeout_ms": 0, "reason": None}
_ADAPTER = {"request_id": "", "version": "", "adapter_name": "", "base_model": "", "rank": None, "dataset_hash": "",
            "uri": "", "metrics": {}, "baseline_metrics": {}, "step": 0, "total_steps": 0, "loss": None, "error": "",
            "error_kind": "", "reason": ""}
_MEMORY = {"entry_id": "", "session_id": None, "kind": "", "content": "", "tags": [], "source_job_id": None,
           "reason": None}

JOBS = Projection("jobs", ("company_automation_jobs",), "job_facts", "company_automation_jobs", _JOB,
                  {**{t: pick(_JOB) for t in JOB_EVENTS}, "job_completed": _completed})
TOOL_CALLS = Projection("tool_calls", ("company_automation_jobs",), "tool_call_facts", "tool_calls", _CALL,
                        {t: pick(_CALL) for t in CALL_EVENTS},
                        ignored=frozenset(JOB_EVENTS) - frozenset(CALL_EVENTS))
TOOLS = Projection("tools", ("company_tools",), "tool_facts", "company_tools", _TOOL,
                   {t: pick(_TOOL) for t in ("tool_registered", "tool_removed")})
# `active` in `lora_adapters` is the version named by the company's latest `adapter_activated` (what vLLM
# serves), not the newest ready one; refusals show as status `refused` with their reason.
ADAPTERS = Projection("adapters", ("lora_training_requests", "lora_training_status", "lora_adapter_ready",
                                   "company_adapters"),
                      "adapter_facts", "lora_adapters", _ADAPTER,
                      {**{t: pick(_ADAPTER) for t in ADAPTER_EVENTS}, "training_rejected": _rejected,
                       "adapter_refused": _served, "adapter_activated": _served})
MEMORY = Projection("memory", ("company_memory",), "memory_facts", "company_memory", _MEMORY,
                    {t: pick(_MEMORY) for t in ("memory_written", "memory_deleted")})



def _job_event(event: Event) -> dict[str, Any]:
    """A job's event as JSON; a request keeps its unit count, not its payload (company data stays in the log)."""
    data = event.to_json()
    if event.type == "data_process_requested":
        from context.units import split_units

        data["request_hash"] = request_hash(str(event.data["job_id"]), event.data)  # for a reused Idempotency-Key
        data["units"] = len(split_units(str(data.pop("payload_json"))))
        data.pop("secret_refs", None)
    return {"job_id": event.data["job_id"], "request_id": event.data.get("request_id") or "",
            "session_id": event.data.get("session_id") or "", "task": event.data.get("task") or "",
            "event_json": json.dumps(data, separators=(",", ":"))}


_JOB_EVENT = {"job_id": "", "request_id": "", "session_id": "", "task": "", "event_json": ""}
# the REST API's read of one job (its timeline folded by streams/job_state.py) and of a company's jobs, queued ones too
JOB_TIMELINE = Projection("job_events", ("company_data", "company_automation_jobs"), "job_event_facts", "job_events",
                        _JOB_EVENT, {t: _job_event for t in ("data_process_requested", *JOB_EVENTS)})

PROJECTIONS: dict[str, Projection] = {p.name: p for p in (JOBS, TOOL_CALLS, TOOLS, ADAPTERS, MEMORY, JOB_TIMELINE)}


def projection(name: str) -> Projection:
    try:
        return PROJECTIONS[name]
    except KeyError:
        raise UnknownProjection(f"unknown projection {name!r}; known: {', '.join(PROJECTIONS)}") from None
