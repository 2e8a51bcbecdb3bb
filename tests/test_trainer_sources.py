"""Training material from the log: a company's current tools and its successful job history."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from cda.settings import Settings
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
