"""Process and jobs over the real broker and chDB: 202 and a job id, `queued` right after (never 404), the same
Idempotency-Key giving the same job and producing nothing new, the job's status, units, calls, results and
adapter as the agents record them, `?wait=`, listing with filters and pages, and the events as SSE."""

from __future__ import annotations

import threading

import httpx
import pytest

from streams.ids import event_id, job_id_for
from tests.api.api_support import ApiStack, events_of, produce
from tests.helpers import eventually
from topics.events import Event

pytestmark = pytest.mark.kafka

INVOICES = {"invoices": [{"customer": "c1", "amount": 3}, {"customer": "c2", "amount": 4}]}


def job_story(company: str, job_id: str, request_id: str) -> list[Event]:
    """What the agents record for a two-unit job: one call completed, one failed, then the job completed."""
    def e(kind: str, *parts: object, **fields: object) -> Event:
        return Event.new(kind, company, event_id=event_id(job_id, kind, *parts), job_id=job_id, **fields)

    return [
        e("job_accepted", request_id=request_id, task="bill", tools=["create_invoice"], adapter_version="v7"),
        e("step_started", 0, step=0, model="acme@lora", unit=0, adapter_version="v7", prompt_hash="p0"),
        e("tool_call_requested", 0, step=0, call_id=f"{job_id}.s0", tool_name="create_invoice", attempt=1,
          arguments_json='{"customer":"c1"}'),
        e("tool_call_completed", 0, step=0, call_id=f"{job_id}.s0", tool_name="create_invoice", attempt=1,
          status_code=201, result_json='{"id":"inv-1"}', latency_ms=12.0),
        e("step_started", 100, step=100, model="acme@lora", unit=1, adapter_version="v7", prompt_hash="p1"),
        e("tool_call_requested", 100, step=100, call_id=f"{job_id}.s100", tool_name="create_invoice", attempt=1,
          arguments_json='{"customer":"c2"}'),
        e("tool_call_failed", 100, step=100, call_id=f"{job_id}.s100", tool_name="create_invoice", attempt=2,
          error="HTTP 422", error_kind="http_4xx", retryable=False, latency_ms=5.0),
        e("job_completed", steps=2, tool_calls=2, result_json='[{"unit":0,"status":"completed"}]', latency_ms=40.0),
    ]


def test_process_answers_202_then_queued_and_an_idempotency_key_makes_one_job(api: ApiStack) -> None:
    company, key = api.company()
    with api.client(key) as client:
        first = client.post("/company-automation/process", json={"task": "bill", "data": INVOICES},
                            headers={"Idempotency-Key": "order-42"})
        assert first.status_code == 202, first.text
        job = first.json()
        assert job["status"] == "queued" and job["url"].endswith(f"/company-automation/jobs/{job['job_id']}")
        now = client.get(f"/company-automation/jobs/{job['job_id']}")
        assert now.status_code == 200 and now.json()["status"] == "queued", now.text
        again = client.post("/company-automation/process", json={"task": "bill", "data": INVOICES},
                            headers={"Idempotency-Key": "order-42"})
        assert again.status_code == 202 and again.json()["job_id"] == job["job_id"] and again.json()["duplicate"]
        by_body = client.post("/company-automation/process", json={"task": "bill", "data": {"c": 1}, "request_id": "r-1"})
        same = client.post("/company-automation/process", json={"task": "bill", "data": {"c": 1}, "request_id": "r-1"})
        assert by_body.json()["job_id"] == same.json()["job_id"] != job["job_id"]
        other = client.post("/company-automation/process", json={"task": "bill", "data": {"c": 2}},
                            headers={"Idempotency-Key": "order-42"})
        assert other.status_code == 409 and "another body" in other.json()["error"]
    requests = [e for e in events_of(api.settings, "company_data") if e.company_id == company]
    assert sorted(str(e["request_id"]) for e in requests) == ["order-42", "r-1"]


def test_a_key_reused_with_another_body_is_409_also_for_a_request_this_process_never_saw(api: ApiStack) -> None:
    """Another API process (or this one before a restart) took request `elsewhere`: the store's hash of it
    tells a repeat (202, the same job) from a different body (409)."""
    company, key = api.company()
    job_id = job_id_for(company, "elsewhere")
    produce(api.settings, [Event.new("data_process_requested", company, request_id="elsewhere", job_id=job_id,
                                     task="bill", payload_json='{"c":1}')])
    with api.client(key) as client:
        eventually(lambda: client.get(f"/company-automation/jobs/{job_id}").status_code == 200, 30, "the job folded")
        other = client.post("/company-automation/process", json={"task": "bill", "data": {"c": 9}, "request_id": "elsewhere"})
        assert other.status_code == 409, other.text
        same = client.post("/company-automation/process", json={"task": "bill", "data": {"c": 1}, "request_id": "elsewhere"})
        assert same.status_code == 202 and same.json()["duplicate"] and same.json()["job_id"] == job_id
    assert len([e for e in events_of(api.settings, "company_data") if e.company_id == company]) == 1


def test_concurrent_requests_with_one_key_are_one_job(api: ApiStack) -> None:
    company, key = api.company()
    answers: list[httpx.Response] = []

    def send() -> None:
        with api.client(key) as client:
            answers.append(client.post("/company-automation/process", json={"task": "t", "data": {"a": 1}},
                                       headers={"Idempotency-Key": "same"}))
    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {a.status_code for a in answers} == {202} and len({a.json()["job_id"] for a in answers}) == 1
    assert len([e for e in events_of(api.settings, "company_data") if e.company_id == company]) == 1


def test_a_job_shows_units_calls_results_adapter_and_latency_and_wait_holds_until_it_ends(api: ApiStack) -> None:
    company, key = api.company()
    with api.client(key) as client:
        job = client.post("/company-automation/process", json={"task": "bill", "data": INVOICES,
                                                               "session_id": "s-1"}).json()
        story = job_story(company, job["job_id"], job["request_id"])
        produce(api.settings, story[:3])
        eventually(lambda: client.get(job["url"]).json()["status"] == "running", 30, "the job running")
        threading.Timer(1.0, produce, (api.settings, story[3:])).start()
        done = client.get(job["url"], params={"wait": 30})
        body = done.json()
        assert body["status"] == "completed", body
        assert body["adapter_version"] == "v7" and body["model"] == "acme@lora" and body["latency_ms"] == 40.0
        assert body["units_total"] == 2 and body["session_id"] == "s-1"
        assert [(u["unit"], u["status"], u["result"]) for u in body["units"]] == [(0, "completed", {"id": "inv-1"}),
                                                                                  (1, "failed", None)]
        assert [[(c["step"], c["status"]) for c in u["calls"]] for u in body["units"]] == [[(0, "completed")],
                                                                                           [(100, "failed")]]
        calls = {c["call_id"]: c for c in body["tool_calls"]}
        assert calls[f"{job['job_id']}.s0"]["status_code"] == 201
        assert calls[f"{job['job_id']}.s100"]["error_kind"] == "http_4xx" and calls[f"{job['job_id']}.s100"]["attempts"] == 2
        assert body["results"] == [{"unit": 0, "status": "completed"}]

        with client.stream("GET", job["events_url"]) as stream:
            kinds = [line.removeprefix("event: ").strip() for line in stream.iter_lines() if line.startswith("event:")]
        assert kinds == ["data_process_requested", *(e.type for e in story)]

        session = client.get("/company-automation/sessions/s-1").json()
        assert [j["job_id"] for j in session["jobs"]] == [job["job_id"]]


def test_jobs_list_filters_and_pages(api: ApiStack) -> None:
    company, key = api.company()
    with api.client(key) as client:
        ids = [client.post("/company-automation/process", json={"task": f"t{i}", "data": {"i": i}}).json()["job_id"]
               for i in range(5)]
        produce(api.settings, job_story(company, ids[0], "r")[-1:])
        eventually(lambda: client.get("/company-automation/jobs").json()["total"] == 5, 30, "five jobs listed")
        eventually(lambda: client.get("/company-automation/jobs", params={"status": "completed"}).json()["total"] == 1,
                   30, "the completed job listed")
        first = client.get("/company-automation/jobs", params={"limit": 2, "order": "oldest"}).json()
        assert [j["job_id"] for j in first["jobs"]] == ids[:2] and first["next_offset"] == 2
        last = client.get("/company-automation/jobs", params={"limit": 2, "offset": 4, "order": "oldest"}).json()
        assert [j["job_id"] for j in last["jobs"]] == ids[4:] and last["next_offset"] is None
        assert client.get("/company-automation/jobs", params={"status": "queued"}).json()["total"] == 4


def test_tools_register_list_remove_and_openapi_import(api: ApiStack) -> None:
    company, key = api.company()
    tool = {"name": "create_invoice", "description": "Bill a customer", "url": "https://billing.example/invoices",
            "parameters": {"type": "object", "properties": {"customer": {"type": "string"}}, "required": ["customer"]}}
    document = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "servers": [{"url": "https://api.example"}],
                "paths": {"/refunds": {"post": {"operationId": "refund", "summary": "Refund an order",
                                                "requestBody": {"content": {"application/json": {"schema": {
                                                    "type": "object", "properties": {"order": {"type": "string"}}}}}}}}}}
    with api.client(key) as client:
        assert client.post("/company-automation/register-tools", json={"tools": [tool]}).status_code == 202
        imported = client.post("/company-automation/register-tools", json={"openapi": document})
        assert imported.status_code == 202 and imported.json() == {"registered": ["refund"]}
        listed = client.get("/company-automation/tools").json()["tools"]
        assert [t["name"] for t in listed] == ["create_invoice", "refund"]
        assert client.delete("/company-automation/tools/refund").status_code == 202
        assert [t["name"] for t in client.get("/company-automation/tools").json()["tools"]] == ["create_invoice"]
        assert client.delete("/company-automation/tools/refund").status_code == 404
    by_tool: dict[str, list[str]] = {}  # keyed by (company, tool): ordered per tool, not across partitions
    for e in events_of(api.settings, "company_tools"):
        if e.company_id == company:
            by_tool.setdefault(str(e["tool_name"]), []).append(e.type)
    assert by_tool == {"create_invoice": ["tool_registered"], "refund": ["tool_registered", "tool_removed"]}


def test_training_request_progress_and_the_gate_and_adapters_with_rollback(api: ApiStack) -> None:
    company, key = api.company()
    example = {"task": "bill", "data": {"customer": "c1"}, "tool": "create_invoice", "arguments": {"customer": "c1"}}
    with api.client(key) as client:
        accepted = client.post("/company-automation/train-adapter", json={"examples": [example] * 3, "rank": 4, "steps": 5})
        assert accepted.status_code == 202, accepted.text
        request_id = accepted.json()["request_id"]
        assert client.get(f"/company-automation/training/{request_id}").json()["status"] == "requested"
        asked = [e for e in events_of(api.settings, "lora_training_requests") if e.company_id == company]
        assert [(e["request_id"], e["rank"], e["max_steps"], len(e["examples"])) for e in asked] == [(request_id, 4, 5, 3)]
        uri = f"file://{api.settings.home}/adapters/{company}/v1"
        produce(api.settings, [
            Event.new("training_progress", company, request_id=request_id, step=5, total_steps=5, loss=0.5, phase="train"),
            Event.new("lora_adapter_ready", company, request_id=request_id, adapter_name=f"{company}@lora", version="v1",
                      uri=uri, base_model="tiny", rank=4, dataset_hash="d1", metrics={"exact_match": 0.9}),
            Event.new("adapter_activated", company, version="v1", served_name=f"{company}@lora", uri=uri, base_model="tiny",
                      rank=4, request_id=request_id),
        ])
        eventually(lambda: client.get(f"/company-automation/training/{request_id}").json()["status"] == "ready", 30,
                   "the request ready")
        run = client.get(f"/company-automation/training/{request_id}").json()
        assert run["gate"] == "passed" and run["metrics"] == {"exact_match": 0.9} and run["version"] == "v1"
        assert run["step"] == 5 and run["loss"] == 0.5
        eventually(lambda: client.get("/company-automation/adapters").json()["active"] == "v1", 30, "v1 active")
        assert client.post("/company-automation/adapters/v1/activate").status_code == 202
        assert client.post("/company-automation/adapters/v9/activate").status_code == 404
    ready = [e for e in events_of(api.settings, "lora_adapter_ready") if e.company_id == company]
    assert [e["version"] for e in ready] == ["v1", "v1"] and ready[1]["uri"] == uri


def test_a_company_past_its_training_quota_gets_429_and_another_company_does_not(api: ApiStack) -> None:
    company, key = api.company()
    other, other_key = api.company()
    example = {"task": "bill", "data": {"customer": "c1"}, "tool": "create_invoice", "arguments": {"customer": "c1"}}
    body = {"examples": [example] * 3, "rank": 4, "steps": 5}
    quota = api.settings.api_training_quota
    with api.client(key) as client:
        ids = [client.post("/company-automation/train-adapter", json=body).json()["request_id"] for _ in range(quota)]
        refused = client.post("/company-automation/train-adapter", json=body)
        assert refused.status_code == 429 and refused.headers["Retry-After"], refused.text
        assert f"its quota is {quota}" in refused.json()["error"]
        with api.client(other_key) as elsewhere:  # one company's queue is not another's
            assert elsewhere.post("/company-automation/train-adapter", json=body).status_code == 202
        produce(api.settings, [Event.new("training_failed", company, request_id=ids[0], error="x", error_kind="internal",
                                         reason_counts={})])
        eventually(lambda: client.get(f"/company-automation/training/{ids[0]}").json()["status"] == "failed", 30,
                   "the first request ended")
        assert client.post("/company-automation/train-adapter", json=body).status_code == 202  # room again
    asked = [e for e in events_of(api.settings, "lora_training_requests") if e.company_id == company]
    assert len(asked) == quota + 1  # the refused request produced nothing
