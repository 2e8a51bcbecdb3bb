"""Bad input: malformed JSON, wrong types, unknown fields, oversize bodies, unknown ids, unknown or revoked keys,
a JSON Schema that cannot compile, an OpenAPI document that is not one, numbers out of bounds — each a 4xx whose
body names the field or the reason, and nothing produced; never a 500. Rate limits answer 429 with Retry-After;
/metrics counts requests per route; /health answers."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from core.settings import Settings
from projections.store import ProjectionStore
from tests.api.api_support import ApiStack, api_stack, auth, raw_values
from tests.helpers import eventually
from topics.catalog import CATALOG
from topics.consumer import EventConsumer
from topics.dead_letters import Skipped

pytestmark = pytest.mark.kafka
GOOD_TOOL = {"name": "t1", "description": "d", "url": "https://x.example/a", "parameters": {"type": "object"}}


def _all_records(settings: Settings) -> int:
    return sum(len(raw_values(settings, s.name)) for s in CATALOG if s.name != "dead_letters")


def test_bad_requests_are_4xx_naming_the_field_and_produce_nothing(api: ApiStack) -> None:
    _, key = api.company()
    before = _all_records(api.settings)
    P, T, R = "/company-automation/process", "/company-automation/register-tools", "/company-automation/train-adapter"
    cases: list[tuple[str, str, dict[str, object], int, str]] = [
        ("POST", P, {"content": b'{"task": "x", "data": ', "headers": {"content-type": "application/json"}}, 422, "json"),
        ("POST", P, {"json": {"task": 5, "data": {}}}, 422, "body.task"),
        ("POST", P, {"json": {"data": {}}}, 422, "body.task"),
        ("POST", P, {"json": {"task": "x", "data": {}, "colour": "red"}}, 422, "body.colour"),
        ("POST", P, {"json": {"task": "x", "data": {}, "use_adapter": "yes"}}, 422, "body.use_adapter"),
        ("POST", P, {"json": {"task": "x", "data": {}, "session_id": "../etc"}}, 422, "body.session_id"),
        ("POST", P, {"json": {"task": "x", "data": {}, "session_id": "a..b"}}, 422, "body.session_id"),
        ("POST", P, {"json": {"task": "x", "data": "y" * 2_100_000}}, 413, "larger than"),
        ("POST", P, {"json": ["not", "an", "object"]}, 422, "body"),
        ("POST", P, {"content": b'{"task": "x", "data": {"a": 1e400}}', "headers": {"content-type": "application/json"}},
         422, "body.data: numbers must be finite"),
        ("POST", P, {"content": b'{"task": "x", "data": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                     "headers": {"content-type": "application/json"}}, 400, "nested too deeply"),
        ("POST", P, {"json": {"task": "x", "data": {"rows": [{"a": 1}, {"a": 2}]}, "expected": [{"tool": "t1"}]}}, 422,
         "body.expected: 1 expected calls for 2 records"),
        ("POST", P, {"json": {"task": "x", "data": {}, "expected": [{"tool": "bad name"}]}}, 422, "body.expected"),
        ("POST", P, {"json": {"task": "x", "data": {}}}, 422, "body.data: no records: an empty object"),
        ("POST", P, {"json": {"task": "x", "data": [1, 2]}}, 422, "body.data: no records: a list that is not of objects"),
        ("POST", P, {"json": {"task": "x", "data": {"rows": [{"a": i} for i in range(1_001)]}}}, 413,
         "1001 records, more than the company's step limit of 1000"),
        ("POST", P, {"json": {"data": {"invoices": [{"a": 1}]}}}, 422, "body.task"),  # neither beside nor in the data
        ("POST", P, {"json": {"task": "x", "data": {"a": 1}, "company_id": "someone-else"}}, 403, "body.company_id"),
        ("POST", T, {"json": {"tools": [GOOD_TOOL], "company_id": "someone-else"}}, 403, "body.company_id"),
        ("POST", R, {"json": {"examples": [{"task": "t", "data": {}, "tool": "t1", "arguments": {}}],
                              "training_data": [{"task": "t", "data": {}, "tool": "t1", "arguments": {}}]}}, 422,
         "examples or training_data, not both"),
        ("POST", T, {"json": {"tools": [{**GOOD_TOOL, "parameters": {"type": "nonsense"}}]}}, 422, "body.tools[0].parameters"),
        ("POST", T, {"json": {"tools": [{**GOOD_TOOL, "url": "ftp://x"}]}}, 422, "body.tools[0].url"),
        ("POST", T, {"json": {"tools": [{**GOOD_TOOL, "parameters": {"type": "object", "properties": {
            "x": {"$ref": "http://127.0.0.1:9/schema.json"}}}}]}}, 422, "body.tools[0].parameters.properties.x.$ref"),
        ("POST", T, {"json": {"openapi": {"openapi": "3.0.3", "paths": {"/x": {"post": {
            "operationId": "x", "requestBody": {"content": {"application/json": {"schema": {
                "$ref": "http://127.0.0.1:9/schema.json"}}}}, "responses": {}}}}}}}, 422,
         "body.openapi: path /x: only references inside the document"),
        ("POST", T, {"json": {"tools": [{**GOOD_TOOL, "secret_ref": "hunter2"}]}}, 422, "body.tools[0].secret_ref"),
        ("POST", T, {"json": {"tools": [GOOD_TOOL, {**GOOD_TOOL, "name": "bad name"}]}}, 422, "body.tools.1.name"),
        ("POST", T, {"json": {"openapi": {"swagger": "2.0", "paths": {}}}}, 422, "body.openapi"),
        ("POST", T, {"json": {"openapi": {"openapi": "3.0.0", "paths": {"/x": 5}}}}, 422, "body.openapi"),
        ("POST", T, {"json": {"openapi": {"openapi": "3.1.0", "paths": {"/x": {"get": {"operationId": ["x"]}}}}}}, 422,
         "body.openapi"),
        ("POST", T, {"json": {}}, 422, "exactly one of tools or openapi"),
        ("POST", R, {"json": {"from_history": True, "rank": 4096}}, 422, "body.rank"),
        ("POST", R, {"json": {"from_history": True, "rank": 64}}, 422, "body.rank"),  # over the server's maximum
        ("POST", R, {"json": {"from_history": True, "steps": 0}}, 422, "body.steps"),
        ("POST", R, {"json": {"from_history": True, "method": "FULL"}}, 422, "body.method"),
        ("POST", R, {"json": {"from_history": True, "examples": [{"task": "t"}]}}, 422, "body.examples"),
        ("POST", R, {"json": {"from_history": False}}, 422, "exactly one"),
        ("GET", "/company-automation/jobs/job-unknown", {}, 404, "no job"),
        ("GET", "/company-automation/jobs/bad%20id", {}, 422, "path.job_id"),
        ("GET", "/company-automation/jobs/job-x", {"params": {"wait": 10_000}}, 422, "query.wait"),
        ("GET", "/company-automation/jobs", {"params": {"limit": 0}}, 422, "query.limit"),
        ("GET", "/company-automation/jobs", {"params": {"status": "lost"}}, 422, "query.status"),
        ("GET", "/company-automation/jobs", {"params": {"since": "yesterday"}}, 422, "query.since"),
        ("GET", "/company-automation/training/unknown-request", {}, 404, "no training request"),
        ("POST", "/company-automation/adapters/unknown-version/activate", {}, 404, "no adapter version"),
        ("DELETE", "/company-automation/tools/unknown", {}, 404, "no tool"),
        ("GET", "/company-automation/memory/unknown", {}, 404, "no memory entry"),
        ("GET", "/company-automation/nowhere", {}, 404, "Not Found"),
    ]
    with api.client(key) as client:
        answers = [(method, path, want, text, client.request(method, path, **kwargs))  # type: ignore[arg-type]
                   for method, path, kwargs, want, text in cases]
    wrong = [(m, p, r.status_code, r.text[:200]) for m, p, want, text, r in answers
             if r.status_code != want or text not in r.text]
    assert wrong == []
    assert all(r.json()["error"] for *_, r in answers)
    for key_ in ("", "cda_unknown.secret", "not-a-key"):
        refused = httpx.post(f"{api.url}/company-automation/process", json={"task": "x", "data": {}},
                             headers=auth(key_) if key_ else {})
        assert refused.status_code == 401 and refused.json()["error"]
    assert _all_records(api.settings) == before


def test_open_streams_and_waits_are_capped_per_key(catalog: Callable[..., Settings], store: ProjectionStore) -> None:
    """With two places per key, a third held request of the same key is a 429 with Retry-After; another key is
    not affected; once one ends, its place is free again."""
    import threading

    for stack in api_stack(catalog, store, api_key_holds=2):
        _, key = stack.company()
        _, other = stack.company()
        with stack.client(key) as client, stack.client(other) as other_client:
            job = client.post("/company-automation/process", json={"task": "x", "data": {"a": 1}}).json()
            url = f"/company-automation/jobs/{job['job_id']}"
            def hold(own_stack: ApiStack = stack, own_key: str = key, job_url: str = url) -> None:
                with own_stack.client(own_key) as own:  # again when a probe below took the place first
                    while own.get(job_url, params={"wait": 6}).status_code == 429:
                        pass

            waits = [threading.Thread(target=hold) for _ in range(2)]
            for wait in waits:
                wait.start()
            eventually(lambda job_url=url: client.get(job_url, params={"wait": 0.01}).status_code == 429, 10,
                       "a third wait refused")
            refused = client.get(f"{url}/events")
            assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
            assert "CDA_API_KEY_HOLDS" in refused.json()["error"]
            assert client.get(url).status_code == 200  # a read that holds nothing is not capped
            other_job = other_client.post("/company-automation/process", json={"task": "x", "data": {"a": 1}}).json()
            assert other_client.get(f"/company-automation/jobs/{other_job['job_id']}",
                                    params={"wait": 0.5}).status_code == 200
            for wait in waits:
                wait.join(30)
            assert client.get(url, params={"wait": 0.5}).status_code == 200  # places released


def test_rate_limit_answers_429_with_retry_after(catalog: Callable[..., Settings], store: ProjectionStore) -> None:
    for stack in api_stack(catalog, store, api_rate_per_s=1.0, api_rate_burst=3):
        _, key = stack.company()
        with stack.client(key) as client:
            codes = [client.get("/company-automation/tools") for _ in range(8)]
        limited = [r for r in codes if r.status_code == 429]
        assert limited and int(limited[0].headers["Retry-After"]) >= 1 and "rate limit" in limited[0].json()["error"]


def test_metrics_and_health(api: ApiStack) -> None:
    _, key = api.company()
    with api.client(key) as client:
        client.get("/company-automation/tools")
        client.get("/company-automation/jobs/job-nope")
    metrics = httpx.get(f"{api.url}/metrics").text
    assert 'handler="/company-automation/tools"' in metrics and 'status="404"' in metrics
    assert "http_request_duration_seconds" in metrics
    assert httpx.get(f"{api.url}/health/live").json() == {"status": "ok"}
    ready = httpx.get(f"{api.url}/health/ready")
    body = ready.json()
    assert ready.status_code == 200 and body["ready"], body
    assert body["components"]["broker"] == "ok" and body["components"]["store"] == "ok"
    assert body["components"]["agents"].startswith("down") and body["components"]["inference"].startswith("down")


def test_ready_sees_agents_in_their_group(api: ApiStack) -> None:
    """With a member in the agents' group (the prefixed name the agents join) readiness says so; an admin
    request made on a client that was dropped never completed, so this once read `down` forever."""
    group = f"{api.settings.topic_prefix}{api.settings.agents_group}"
    with EventConsumer(api.settings, group, dead_letters=Skipped()) as member:
        member.subscribe(["company_data"])
        eventually(lambda: bool(member.poll(0.2) is not None and member.raw.assignment()), 30, "joining the group")
        eventually(lambda: httpx.get(f"{api.url}/health/ready").json()["components"]["agents"] == "ok", 30,
                   "readiness reporting the agents")


def test_open_event_streams_hold_their_place(catalog: Callable[..., Settings], store: ProjectionStore) -> None:
    """Two event streams of one key left open (read no further than their headers): a third is a 429, and once
    they close, a stream is served again."""
    from contextlib import ExitStack

    for stack in api_stack(catalog, store, api_key_holds=2):
        _, key = stack.company()
        with stack.client(key) as client:
            job = client.post("/company-automation/process", json={"task": "x", "data": {"a": 1}}).json()
            url = f"{stack.url}/company-automation/jobs/{job['job_id']}/events"
            eventually(lambda u=url: client.get(u.removesuffix("/events")).status_code == 200, 20, "the job's view")
            with ExitStack() as held:
                streams = [held.enter_context(held.enter_context(httpx.Client(timeout=30, headers=auth(key)))
                                              .stream("GET", url)) for _ in range(2)]
                assert [s.status_code for s in streams] == [200, 200]
                third = httpx.get(url, headers=auth(key), timeout=10)
                assert third.status_code == 429 and third.headers["retry-after"] == "1"
            eventually(lambda u=url: client.get(u.removesuffix("/events"), params={"wait": 0.01}).status_code == 200,
                       10, "the places released once the streams closed")
