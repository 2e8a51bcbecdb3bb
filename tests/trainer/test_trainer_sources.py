"""Training material from the log: a company's current tools and its successful job history."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from core.settings import Settings
from topics.events import Event
from topics.producer import EventProducer
from trainer.sources import company_tools, history_examples

pytestmark = pytest.mark.kafka
Catalog = Callable[..., Settings]


def test_tools_and_history_are_folded_per_company(catalog: Catalog) -> None:
    settings = catalog("company_tools", "company_data", "company_automation_jobs")
    schema = {"type": "object", "properties": {"ref": {"type": "string"}}}
    events = [
        Event.new("tool_registered", "acme", tool_name="zx_post", description="d", parameters_schema_json=json.dumps(schema), url="https://acme.example/t"),
        Event.new("tool_registered", "acme", tool_name="old", description="d", parameters_schema_json="{}", url="https://acme.example/t"),
        Event.new("tool_removed", "acme", tool_name="old"),
        Event.new("tool_registered", "globex", tool_name="other", description="d", parameters_schema_json="{}", url="https://acme.example/t"),
    ]
    for job, outcome in (("j1", "ok"), ("j2", "call_failed"), ("j3", "job_failed")):
        events += [
            Event.new("data_process_requested", "acme", request_id=f"r-{job}", job_id=job, task=f"task {job}",
                      payload_json=json.dumps({"customer": job})),
            Event.new("job_accepted", "acme", job_id=job, request_id=f"r-{job}", task=f"task {job}"),
            Event.new("tool_call_requested", "acme", job_id=job, step=1, call_id="c1", tool_name="zx_post",
                      arguments_json=json.dumps({"ref": f"ACME-{job}"})),
        ]
        if outcome == "call_failed":
            events.append(Event.new("tool_call_failed", "acme", job_id=job, step=1, call_id="c1", tool_name="zx_post",
                                    error="503", error_kind="http_5xx"))
        else:
            events.append(Event.new("tool_call_completed", "acme", job_id=job, step=1, call_id="c1", tool_name="zx_post",
                                    result_json="{}", latency_ms=1.0))
        if outcome == "job_failed":
            events.append(Event.new("job_failed", "acme", job_id=job, error="later step failed", error_kind="tool"))
        else:
            events.append(Event.new("job_completed", "acme", job_id=job, steps=1, tool_calls=1, result_json="{}",
                                    latency_ms=1.0))
    with EventProducer(settings) as producer:
        producer.produce_many(events)
    tools = company_tools(settings, "acme")
    assert [(t.name, t.parameters) for t in tools] == [("zx_post", schema)]
    examples = history_examples(settings, "acme")
    assert [(e.task, json.loads(e.payload_json), e.tool_name, e.arguments) for e in examples] == [
        ("task j1", {"customer": "j1"}, "zx_post", {"ref": "ACME-j1"})]
    assert history_examples(settings, "globex") == []


def test_replay_takes_adapter_decided_completed_steps_in_their_recorded_context(catalog: Catalog) -> None:
    """The gate's replay: a step an adapter decided, in a completed job, whose call succeeded, comes back with the
    task, unit data, notes and earlier results its recorded prompt showed; base-decided, failed or unfinished ones
    do not (a call the base made is no evidence of the company's practice)."""
    from core.prompts import render_prompt
    from trainer.replay import replay_examples
    from trainer.synthetic import DEMO_TOOLS

    settings = catalog("company_automation_jobs")
    events = []
    for job, adapter, called, ended in (("j1", "v1", True, True), ("j2", None, True, True), ("j3", "v1", False, True),
                                        ("j4", "v1", True, False)):
        prompt = render_prompt(f"Bill {job}", json.dumps({"customer": job, "amount": 5}), list(DEMO_TOOLS),
                               ["Weekends are closed"], ['zx_post: {"id":"R-1"}'])
        events += [
            Event.new("step_started", "acme", job_id=job, step=1, model="m", unit=0, adapter_version=adapter,
                      prompt_hash="h", prompt=prompt, prompt_version=2),
            Event.new("tool_call_requested", "acme", job_id=job, step=1, call_id="c1", tool_name="zx_post",
                      arguments_json=json.dumps({"ref": f"ACME-{job}", "cents": 500})),
        ]
        if called:
            events.append(Event.new("tool_call_completed", "acme", job_id=job, step=1, call_id="c1", tool_name="zx_post",
                                    result_json="{}", latency_ms=1.0))
        if ended:
            events.append(Event.new("job_completed", "acme", job_id=job, steps=1, tool_calls=1, result_json="{}",
                                    latency_ms=1.0))
    with EventProducer(settings) as producer:
        producer.produce_many(events)
    replayed = replay_examples(settings, "acme")
    assert [(e.task, json.loads(e.payload_json), e.tool_name, e.arguments, e.notes, e.earlier) for e in replayed] == [
        ("Bill j1", {"customer": "j1", "amount": 5}, "zx_post", {"ref": "ACME-j1", "cents": 500},
         ("Weekends are closed",), ('zx_post: {"id":"R-1"}',))]
    assert replay_examples(settings, "globex") == []
    every = replay_examples(settings, "acme", adapter_only=False)  # `from_history` training: the base's steps too
    assert [e.task for e in every] == ["Bill j1", "Bill j2"]
