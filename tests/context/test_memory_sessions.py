"""Memory and sessions as code, boundaries faked: the folds, recall's ranking and budget, what bad input
gets, and — through the agent loop — that a recalled note and a session's earlier result reach the prompt,
that a deleted entry never does, and that a closed or unknown session fails the job at acceptance."""

from __future__ import annotations

import asyncio
import json

import pytest

from context import events as context_events
from context.memory import AUTOMATION, CompanyMemory, automation_content
from context.recall import RecallIndex, recall, terms
from context.sessions import CompanySessions
from core.prompts import ToolSpec, render_prompt
from streams.agent_loop import JobRun, JobRunner
from streams.agent_settings import AgentSettings
from tests.streams.test_agent_loop import TOOLS, FakeBridge, FakeModel, Log, request
from topics.events import Event

SPECS = [ToolSpec("create_invoice", "Create an invoice", {"type": "object", "properties": {
    "customer": {"type": "string"}, "currency": {"type": "string"}}})]


def _memory(*events: Event) -> CompanyMemory:
    memory = CompanyMemory()
    for event in events:
        memory.apply(event)
    return memory


def test_prompt_without_context_reads_as_before_and_with_context_shows_both_sections() -> None:
    plain = render_prompt("Bill it", '{"a":1}', SPECS)
    assert "Notes:" not in plain and "Earlier:" not in plain and plain.endswith("Call: ")
    full = render_prompt("Bill it", '{"a":1}', SPECS, ["Default currency: CHF"], ["create_invoice: {\"id\":\"I-9\"}"])
    assert full.index("Notes:\n- Default currency: CHF") < full.index("Earlier:\n- create_invoice") < full.index("Task:")
    assert "- one line" in render_prompt("t", "{}", SPECS, ["one\nline"])  # an entry cannot open a section


def test_memory_fold_writes_replaces_and_deletes() -> None:
    first = context_events.memory_entry("acme", "Default currency: CHF", 100, entry_id="cur")
    second = context_events.memory_entry("acme", "Default currency: EUR", 100, entry_id="cur")
    memory = _memory(first, second, context_events.memory_entry("globex", "Default currency: USD", 100))
    assert [e.content for e in memory.entries_of("acme")] == ["Default currency: EUR"]
    memory.apply(context_events.deletion("acme", "cur"))
    assert memory.entries_of("acme") == [] and len(memory.entries_of("globex")) == 1


def test_recall_ranks_by_relevance_keeps_to_the_budget_and_leaves_unrelated_and_far_weaker_entries_out() -> None:
    entries = _memory(
        context_events.memory_entry("acme", "Default currency: CHF", 100),
        context_events.memory_entry("acme", "Weekends are closed", 100),
        context_events.memory_entry("acme", "For Vorn Akela, currency is SEK", 100),
    ).entries_of("acme")
    found = recall(entries, "Create the invoice", json.dumps({"customer": "Vorn Akela"}), SPECS)
    assert found.notes == ("For Vorn Akela, currency is SEK",)  # it names the customer: the default is far behind
    other = recall(entries, "Create the invoice", json.dumps({"customer": "Ilse Brand"}), SPECS)
    assert other.notes[0] == "Default currency: CHF" and "Weekends are closed" not in other.notes
    assert len(recall(entries, "Create the invoice", "{}", SPECS, budget_tokens=10).notes) <= 1
    assert terms("Invoices_due") == ["invoice", "due"]


def test_recallable_keeps_every_preference_and_only_the_latest_automation_history() -> None:
    events = [context_events.memory_entry("acme", "Default currency: CHF", 100, entry_id="pref")]
    events += [Event.new("memory_written", "acme", entry_id=f"auto-{i}", kind=AUTOMATION, source_job_id=f"j{i}",
                         content=automation_content(f"Task {i}", "create_invoice", {}, "completed", {}), tags=[])
               for i in range(5)]
    memory = _memory(*events)
    kept = memory.recallable("acme", automation_kept=2)
    assert [e.entry_id for e in kept if e.kind == AUTOMATION] == ["auto-3", "auto-4"]
    assert any(e.entry_id == "pref" for e in kept) and len(memory.recallable("acme")) == 6
    assert [e.kind for e in memory.recallable("acme", automation_kept=0)] == ["preference"]


def test_one_index_answers_a_job_s_decisions_as_a_fresh_recall_would() -> None:
    entries = _memory(
        context_events.memory_entry("acme", "Default currency: CHF", 100),
        context_events.memory_entry("acme", "For Vorn Akela, currency is SEK", 100),
    ).entries_of("acme")
    index = RecallIndex(entries)
    for customer in ("Vorn Akela", "Ilse Brand", "Vorn Akela"):
        data = json.dumps({"customer": customer})
        assert index.recall("Create the invoice", data, SPECS) == recall(entries, "Create the invoice", data, SPECS)
    assert RecallIndex([]).recall("Create the invoice", "{}", SPECS).notes == ()


def test_automation_entries_show_what_was_done_but_never_their_values() -> None:
    event = Event.new("memory_written", "acme", entry_id="job-1-0", kind=AUTOMATION, source_job_id="j1",
                      content=automation_content("Create the invoice", "create_invoice", {"customer": "ID-4242"},
                                                 "completed", {"invoice_id": "INV-77"}), tags=["automation"])
    entry = _memory(event).entries_of("acme")[0]
    assert "create_invoice" in entry.note() and "4242" not in entry.note() and "INV-77" not in entry.note()


def test_bad_memory_and_session_requests_name_the_field() -> None:
    with pytest.raises(context_events.ContextRequestError) as too_long:
        context_events.memory_entry("acme", "x" * 101, 100)
    assert too_long.value.field == "content" and "100" in str(too_long.value)
    with pytest.raises(context_events.ContextRequestError) as empty:
        context_events.memory_entry("acme", "   ", 100)
    assert empty.value.field == "content"
    with pytest.raises(context_events.ContextRequestError) as kind:
        context_events.memory_entry("acme", "x", 100, kind="secret")
    assert kind.value.field == "kind"
    sessions = CompanySessions()
    opened = context_events.session_opened("acme")
    sessions.apply(opened)
    sid = str(opened["session_id"])
    assert sessions.refusal("acme", sid) is None
    assert sessions.refusal("globex", sid)[1] == "unknown_session"  # type: ignore[index]
    sessions.apply(context_events.session_closed("acme", sid))
    assert sessions.refusal("acme", sid)[1] == "session_closed"  # type: ignore[index]



def test_closed_sessions_are_remembered_up_to_a_bound_open_ones_always() -> None:
    sessions = CompanySessions(closed_kept=2)
    opened = [context_events.session_opened("acme") for _ in range(4)]
    for event in opened:
        sessions.apply(event)
    ids = [str(e["session_id"]) for e in opened]
    for sid in ids[:3]:
        sessions.apply(context_events.session_closed("acme", sid))
    assert sessions.refusal("acme", ids[0])[1] == "unknown_session"  # type: ignore[index]  # the oldest closed: forgotten
    assert [sessions.refusal("acme", sid)[1] for sid in ids[1:3]] == ["session_closed"] * 2  # type: ignore[index]
    assert sessions.refusal("acme", ids[3]) is None and len(sessions.open_sessions()) == 1


def _run(job: JobRun, model: FakeModel) -> Log:
    log = Log()
    asyncio.run(JobRunner(model, FakeBridge(), log.emit).run(job))
    return log


def test_notes_and_earlier_results_reach_the_prompt_and_the_step_records_them() -> None:
    note = context_events.memory_entry("acme", "Always use cents for zx_post", 100, entry_id="pref")
    gone = context_events.memory_entry("acme", "Deleted zx_post preference", 100, entry_id="gone")
    memory = _memory(note, gone, context_events.deletion("acme", "gone"))
    earlier = Event.new("memory_written", "acme", entry_id="job-j0-0", kind=AUTOMATION, session_id="s1",
                        source_job_id="j0", content=automation_content("Create", "zx_post", {}, "completed", {"id": "X-1"}))
    memory.apply(earlier)
    job = JobRun(request(1, session_id="s1"), TOOLS, AgentSettings("acme"), known_company=True,
                 recall=lambda task, data, specs: recall(memory.recallable("acme"), task, data, specs),
                 earlier=memory.session_results("acme", "s1"))
    model = FakeModel()
    log = _run(job, model)
    prompt = model.asked[0]
    assert "- Always use cents for zx_post" in prompt and "Deleted" not in prompt
    assert 'Earlier:\n- zx_post: {"id":"X-1"}' in prompt
    step = next(e for e in log.events if e.type == "step_started")
    assert step["memory_entries"] == ["pref"] and step["session_jobs"] == ["j0"] and step["prompt"] == prompt
    written = [e for e in log.events if e.type == "memory_written"]
    assert len(written) == 1 and written[0]["session_id"] == "s1" and written[0]["kind"] == AUTOMATION
    assert json.loads(str(written[0]["content"]))["status"] == "completed"
    assert [e.type for e in log.events].index("memory_written") < [e.type for e in log.events].index("job_completed")


def test_a_closed_session_fails_the_job_at_acceptance_and_nothing_else_happens() -> None:
    job = JobRun(request(2, session_id="s9"), TOOLS, AgentSettings("acme"), known_company=True,
                 session_refusal=("session s9 is closed (idle)", "session_closed"))
    model = FakeModel()
    log = _run(job, model)
    assert [e.type for e in log.events] == ["job_accepted", "job_failed"] and model.asked == []
    assert log.events[-1]["error_kind"] == "session_closed"


def test_an_adapter_trained_for_another_prompt_version_is_refused(tmp_path: object) -> None:
    from pathlib import Path

    from core.prompts import PROMPT_VERSION
    from inference.adapter_files import META_FILE, check_prompt_version
    from inference.errors import AdapterInvalid

    folder = Path(str(tmp_path))
    check_prompt_version(folder, PROMPT_VERSION)  # no trainer record: placed by hand, let through
    (folder / META_FILE).write_text(json.dumps({"prompt_version": PROMPT_VERSION}))
    check_prompt_version(folder, PROMPT_VERSION)
    (folder / META_FILE).write_text(json.dumps({"version": "old"}))  # before versions were recorded: version 1
    with pytest.raises(AdapterInvalid) as refused:
        check_prompt_version(folder, PROMPT_VERSION)
    assert refused.value.kind == "wrong_prompt_version" and "prompt version 1" in str(refused.value)


def test_retention_cuts_the_oldest_history_but_never_an_open_session_s_results() -> None:
    from context.memory import MemoryEntry

    def entry(i: int, session: str | None) -> MemoryEntry:
        return MemoryEntry("acme", f"job-{i}", "automation", "{}", (), session, f"j{i}", 1000 + i)

    entries = [entry(0, "open-s"), entry(1, None), entry(2, "closed-s"), entry(3, None), entry(4, None),
               MemoryEntry("acme", "pref", "preference", "Bill in CHF", (), None, None, 999)]
    deleted = [str(e["entry_id"]) for e in context_events.retention(entries, 2, {"open-s"})]
    assert deleted == ["job-1", "job-2"]  # the oldest two of the four that may go; the open session's stays
    assert context_events.retention(entries, 10) == []

