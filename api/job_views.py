"""A job's events, as the API shows them: status, units, tool calls with outcomes, results, adapter, latency."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from api.reads import JobView
from api.schemas.jobs import JobPublic, ToolCallPublic, UnitCallPublic, UnitPublic
from streams.ids import UNIT_STEPS


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) and value else None


def _json(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return text


def status_of(view: JobView) -> str:
    state = view.state
    if state.finished:
        return state.finished
    if state.steps or state.tool_calls or any(u.done for u in state.units.values()):
        return "running"
    return "accepted" if state.accepted else "queued"


def _calls(events: list[dict[str, Any]]) -> list[ToolCallPublic]:
    calls: dict[str, dict[str, Any]] = {}
    for e in events:
        if e["type"] not in ("tool_call_requested", "tool_call_completed", "tool_call_failed"):
            continue
        call = calls.setdefault(e["call_id"], {"call_id": e["call_id"], "step": e["step"], "unit": e["step"] // UNIT_STEPS,
                                               "tool": e.get("tool_name") or "", "attempts": 0, "status": "requested"})
        call["attempts"] = max(call["attempts"], int(e.get("attempt") or 1))
        if e["type"] == "tool_call_requested":
            call["arguments"] = _json(e.get("arguments_json"))
        elif e["type"] == "tool_call_completed":
            call.update(status="completed", status_code=e.get("status_code"), latency_ms=e.get("latency_ms"))
        else:
            call.update(status="failed", status_code=e.get("status_code"), latency_ms=e.get("latency_ms"),
                        error=e.get("error") or "", error_kind=e.get("error_kind") or "")
    return [ToolCallPublic(**c) for c in calls.values()]


def _units(view: JobView) -> list[UnitPublic]:
    units = []
    for index in sorted(view.state.units):
        u = view.state.units[index]
        latest = u.calls[-1].outcome if u.calls else None
        ended = "completed" if view.state.finished and latest == "completed" else None  # logs from before unit_ended
        status = u.outcome or ended or ("calling" if u.pending_call else "deciding" if u.asked else "pending")
        units.append(UnitPublic(unit=index, status=status, answer=u.answer,
                                calls=[UnitCallPublic(**c.public()) for c in u.calls], tool=u.tool,
                                arguments=u.arguments, status_code=u.status_code,
                                result=u.result if status == "completed" else None, error=u.error, error_kind=u.error_kind))
    return units


def job_public(view: JobView, url: str, events_url: str) -> JobPublic:
    fields: dict[str, Any] = {"job_id": view.job_id, "request_id": "", "status": status_of(view), "url": url,
                              "events_url": events_url}
    for e in view.events:
        kind = e["type"]
        if kind == "data_process_requested":
            fields.update(request_id=e["request_id"], task=e["task"], session_id=e.get("session_id"),
                          requested_at=_time(e["occurred_at"]), units_total=e.get("units"))
        elif kind == "job_accepted":
            fields.update(request_id=e["request_id"], task=e["task"], accepted_at=_time(e["occurred_at"]),
                          adapter_version=e.get("adapter_version"))
            fields.setdefault("session_id", e.get("session_id"))
        elif kind == "step_started":
            fields.update(model=e.get("model"), adapter_version=e.get("adapter_version") or fields.get("adapter_version"))
        elif kind in ("job_completed", "job_failed"):
            fields.update(finished_at=_time(e["occurred_at"]), latency_ms=e.get("latency_ms"))
            if kind == "job_completed":
                fields["results"] = _json(e.get("result_json"))
            else:
                fields.update(error=e.get("error") or "", error_kind=e.get("error_kind") or "")
    results = fields.get("results")
    judged = {u.get("unit"): u.get("right") for u in results.get("units", []) if isinstance(u, dict)} if isinstance(
        results, dict) else {}
    units = [u.model_copy(update={"right": judged.get(u.unit)}) for u in _units(view)]
    if isinstance(results, dict) and isinstance(results.get("right"), bool):
        fields["right"] = results["right"]
    return JobPublic(**fields, units=units, tool_calls=_calls(view.events))


def queued(job_id: str, info: dict[str, Any], url: str, events_url: str) -> JobPublic:
    """A job this process accepted that no projection shows yet."""
    return JobPublic(job_id=job_id, request_id=info["request_id"], status="queued", task=info["task"],
                     session_id=info.get("session_id"), requested_at=info.get("requested_at"),
                     units_total=info.get("units"), url=url, events_url=events_url)
