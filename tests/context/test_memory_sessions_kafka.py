"""Memory and sessions on the real broker through the real agents (Faust) and the real example API; the model
is the scripted stand-in of tests/streams/test_agents.py, so what is checked is what reaches the prompt: a company
note, a session's earlier result after the agents were restarted, a deleted entry never again, and sessions
that are closed or unknown failing the job at acceptance (benchmarks/a2_a3_context.py asks the real base)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from context import events as context_events
from core.settings import Settings
from streams.app import agents_in_thread
from streams.job_reader import timeline
from streams.service import AgentService
from tests.helpers import eventually
from tests.streams.test_agents import ScriptedModel, ended, onboard, request
from topics.events import Event
from topics.producer import EventProducer

pytestmark = pytest.mark.kafka
Catalog = Callable[..., Settings]


def _produce(settings: Settings, *events: Event, tombstones: tuple[Event, ...] = ()) -> None:
    with EventProducer(settings) as producer:
        producer.produce_many(events)
        for event in tombstones:
            producer.tombstone(event)


def _step(settings: Settings, job_id: str) -> Event:
    return next(e for e in timeline(settings, job_id) if e.type == "step_started")


def _run(settings: Settings, *jobs: Event) -> None:
    _produce(settings, *jobs)
    with agents_in_thread(settings, AgentService(settings, model=ScriptedModel())):
        eventually(ended(settings, *(str(j["job_id"]) for j in jobs)), 90, "the jobs ending")


def test_notes_and_session_results_reach_the_prompt_across_a_restart_and_deletions_never_do(
        catalog: Catalog, example_api: str) -> None:
    settings = catalog()
    onboard(settings, example_api)
    note = context_events.memory_entry("acme", "Always bill zx_post in cents", 2_000)
    other = context_events.memory_entry("acme", "Ask before deleting anything", 2_000)
    opened = context_events.session_opened("acme")
    session = str(opened["session_id"])
    _produce(settings, note, other, opened)

    first = request("acme", "in-session-1", [{"customer": "c101", "amount": 3}], session_id=session)
    _run(settings, first)  # the agents stop here: the next job is read by new ones, from the log alone
    step = _step(settings, str(first["job_id"]))
    assert "- Always bill zx_post in cents" in str(step["prompt"]) and step["memory_entries"] == [note["entry_id"]]
    assert "Earlier:" not in str(step["prompt"]) and step["prompt_version"] == 3

    gone = context_events.deletion("acme", str(note["entry_id"]))
    _produce(settings, gone, tombstones=(gone,))
    second = request("acme", "in-session-2", [{"customer": "c102", "amount": 4}], session_id=session)
    _run(settings, second)
    step = _step(settings, str(second["job_id"]))
    prompt = str(step["prompt"])
    result = json.loads(str(next(e for e in timeline(settings, str(first["job_id"])) if e.type == "tool_call_completed")["result_json"]))
    assert "Earlier:\n- zx_post: " + json.dumps(result, sort_keys=True, separators=(",", ":")) in prompt
    assert step["session_jobs"] == [first["job_id"]]
    assert "Always bill" not in prompt and note["entry_id"] not in step["memory_entries"]

    _produce(settings, context_events.session_closed("acme", session))
    closed = request("acme", "in-session-3", [{"customer": "c103", "amount": 5}], session_id=session)
    unknown = request("acme", "unknown-session", [{"customer": "c104", "amount": 6}], session_id="ses-nope")
    foreign = context_events.session_opened("globex")
    _produce(settings, foreign)
    stolen = request("acme", "foreign-session", [{"customer": "c105", "amount": 7}], session_id=str(foreign["session_id"]))
    _run(settings, closed, unknown, stolen)
    kinds: dict[str, Any] = {}
    for job in (closed, unknown, stolen):
        events = timeline(settings, str(job["job_id"]))
        assert [e.type for e in events] == ["job_accepted", "job_failed"]
        kinds[str(job["request_id"])] = events[-1]["error_kind"]
    assert kinds == {"in-session-3": "session_closed", "unknown-session": "unknown_session",
                     "foreign-session": "unknown_session"}


def test_an_idle_session_is_closed_by_the_agents_once(catalog: Catalog) -> None:
    import asyncio
    import time
    from datetime import UTC, datetime

    from tests.api.api_support import events_of

    settings = catalog().model_copy(update={"session_idle_s": 60.0})
    busy, idle = context_events.session_opened("acme"), context_events.session_opened("acme")
    _produce(settings, busy, idle)
    service = AgentService(settings, model=ScriptedModel())
    service.start()
    try:
        now = int(time.time() * 1000)
        used = datetime.fromtimestamp((now + 30_000) / 1000, UTC)  # a job ran in `busy` 30 s later
        service.memory.apply(Event.new("memory_written", "acme", occurred_at=used, entry_id="job-x-0", kind="automation",
                                       session_id=str(busy["session_id"]), source_job_id="x", content="{}"))
        assert asyncio.run(service.close_idle_sessions(now + 30_000)) == 0
        assert asyncio.run(service.close_idle_sessions(now + 61_000)) == 1  # `busy` was used since it opened
        assert asyncio.run(service.close_idle_sessions(now + 61_000)) == 0
    finally:
        asyncio.run(service.aclose())
    closed = [e for e in events_of(settings, "company_sessions") if e.type == "session_closed"]
    assert [(e["session_id"], e["reason"]) for e in closed] == [(idle["session_id"], "idle")]


def test_the_automation_history_keeps_the_latest_entries_and_tombstones_the_older(
        catalog: Catalog, example_api: str) -> None:
    from tests.api.api_support import events_of

    settings = catalog().model_copy(update={"memory_automation_kept": 3})
    onboard(settings, example_api)
    preference = context_events.memory_entry("acme", "Always bill zx_post in cents", 2_000)
    _produce(settings, preference)
    jobs = [request("acme", f"kept-{i}", [{"customer": f"c{i}0", "amount": 1}, {"customer": f"c{i}1", "amount": 2}])
            for i in range(3)]
    service = AgentService(settings, model=ScriptedModel())
    _produce(settings, *jobs)
    with agents_in_thread(settings, service):
        eventually(ended(settings, *(str(j["job_id"]) for j in jobs)), 90, "the jobs ending")
        eventually(lambda: len([e for e in service.memory.entries_of("acme") if e.kind == "automation"]) == 3, 30,
                   "the history cut to its latest 3")
    kept = service.memory.entries_of("acme")
    assert preference["entry_id"] in {e.entry_id for e in kept}  # a company's own entries are never cut
    log = events_of(settings, "company_memory")
    written = sorted((e for e in log if e.type == "memory_written" and e["kind"] == "automation"),
                     key=lambda e: (e.occurred_at, str(e["entry_id"])))  # the jobs ran concurrently: in any order
    assert len(written) == 6
    assert {e.entry_id for e in kept if e.kind == "automation"} == {str(e["entry_id"]) for e in written[-3:]}
    deleted = [e for e in log if e.type == "memory_deleted"]
    assert {str(e["entry_id"]) for e in deleted} == {str(e["entry_id"]) for e in written[:3]}  # the oldest cut
    assert all("retention" in str(e["reason"]) for e in deleted)
    fresh = AgentService(settings, model=ScriptedModel())  # a restarted worker folds the same bounded memory
    fresh.start()
    try:
        assert [e.entry_id for e in fresh.memory.entries_of("acme")] == [e.entry_id for e in kept]
    finally:
        import asyncio

        asyncio.run(fresh.aclose())


def test_a_closed_sessions_results_are_folded_to_one_summary_once(catalog: Catalog) -> None:
    """Two results of a session closed by request become one `session` entry (counts, no values) and two
    tombstoned deletions on the compacted topic; the summary is never recalled; folding again writes nothing."""
    import asyncio

    from context.memory import SESSION, automation_content
    from context.reads import read_memory
    from tests.api.api_support import events_of

    settings = catalog()
    session = context_events.session_opened("acme")
    results = [Event.new("memory_written", "acme", entry_id=f"job-{i}-0", kind="automation", source_job_id=f"job-{i}",
                         session_id=str(session["session_id"]),
                         content=automation_content("Bill", "zx_post", {"ref": f"ACME-c{i}"}, status, {"ok": True}))
               for i, status in enumerate(("completed", "failed"))]
    _produce(settings, session, *results, context_events.session_closed("acme", str(session["session_id"])))
    service = AgentService(settings, model=ScriptedModel())
    service.start()
    try:
        assert asyncio.run(service.fold_closed_sessions()) == 1
        assert asyncio.run(service.fold_closed_sessions()) == 0
        assert service.memory.session_results("acme", str(session["session_id"])) == []
        assert all(e.kind != SESSION for e in service.memory.recallable("acme"))
    finally:
        asyncio.run(service.aclose())
    [summary] = [e for e in read_memory(settings).entries_of("acme") if e.kind == SESSION]
    folded = json.loads(summary.content)
    assert (folded["jobs"], folded["units"], folded["by_status"], folded["calls_by_tool"]) == (
        2, 2, {"completed": 1, "failed": 1}, {"zx_post": 2})
    assert "ACME-c0" not in summary.content  # counts, not values
    deleted = [e for e in events_of(settings, "company_memory") if e.type == "memory_deleted"]
    assert sorted(e["entry_id"] for e in deleted) == ["job-0-0", "job-1-0"]
