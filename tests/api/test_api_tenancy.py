"""Tenancy: company B's key on every kind of company A's resources, through every route — every one refused exactly
like a resource that does not exist (404, or absent from B's listings), and A's resources untouched. The count of
refusals is printed."""

from __future__ import annotations

import pytest

from api.keys import issue_key
from tests.api.api_support import ApiStack, produce
from tests.helpers import eventually
from topics.events import Event

pytestmark = pytest.mark.kafka


def test_company_b_reaches_nothing_of_company_a(api: ApiStack) -> None:
    a, key_a = api.company()
    b, key_b = api.company()
    tool = {"name": "secret_tool", "description": "A's own", "url": "https://a.example/x",
            "parameters": {"type": "object"}}
    with api.client(key_a) as ca, api.client(key_b) as cb:
        assert ca.post("/company-automation/register-tools", json={"tools": [tool]}).status_code == 202
        job = ca.post("/company-automation/process", json={"task": "t", "data": {"x": 1}, "session_id": "sess-a"},
                      headers={"Idempotency-Key": "shared-key"}).json()
        training = ca.post("/company-automation/train-adapter", json={"from_history": True}).json()
        uri = f"file://{api.settings.home}/adapters/{a}/va1"
        produce(api.settings, [
            Event.new("lora_adapter_ready", a, request_id=training["request_id"], adapter_name=f"{a}@lora", version="va1",
                      uri=uri, base_model="tiny", rank=4, dataset_hash="d", metrics={"exact_match": 1.0}),
            Event.new("memory_written", a, entry_id="mem-a", session_id="sess-a", kind="fact", content="A's secret",
                      tags=["x"]),
        ])
        eventually(lambda: ca.get("/company-automation/adapters").json()["versions"] != [], 30, "A's adapter listed")
        eventually(lambda: ca.get("/company-automation/memory/mem-a").status_code == 200, 30, "A's memory entry")
        eventually(lambda: ca.get("/company-automation/sessions/sess-a").status_code == 200, 30, "A's session")

        not_found = {
            "GET job": cb.get(f"/company-automation/jobs/{job['job_id']}"),
            "GET job ?wait": cb.get(f"/company-automation/jobs/{job['job_id']}", params={"wait": 1}),
            "GET job events (SSE)": cb.get(f"/company-automation/jobs/{job['job_id']}/events"),
            "GET session": cb.get("/company-automation/sessions/sess-a"),
            "DELETE tool": cb.delete("/company-automation/tools/secret_tool"),
            "GET training request": cb.get(f"/company-automation/training/{training['request_id']}"),
            "POST activate adapter version": cb.post("/company-automation/adapters/va1/activate"),
            "GET memory entry": cb.get("/company-automation/memory/mem-a"),
        }
        absent = {
            "GET jobs": job["job_id"] not in [j["job_id"] for j in cb.get("/company-automation/jobs").json()["jobs"]],
            "GET jobs ?session_id": cb.get("/company-automation/jobs", params={"session_id": "sess-a"}).json()["total"] == 0,
            "GET tools": "secret_tool" not in [t["name"] for t in cb.get("/company-automation/tools").json()["tools"]],
            "GET adapters": cb.get("/company-automation/adapters").json() == {"active": None, "versions": [], "refusals": []},
            "GET memory": cb.get("/company-automation/memory").json() == {"entries": []},
        }
        # the same idempotency key is B's own request: a new job of B's, never A's job
        own = cb.post("/company-automation/process", json={"task": "t", "data": {"a": 1}}, headers={"Idempotency-Key": "shared-key"})
        absent["POST process with A's Idempotency-Key"] = own.json()["job_id"] != job["job_id"] and not own.json()["duplicate"]
        # a tool of the same name is B's own; A's stays as it was
        cb.post("/company-automation/register-tools", json={"tools": [{**tool, "url": "https://b.example/y"}]})
        absent["POST register-tools over A's name"] = ca.get("/company-automation/tools").json()["tools"][0]["url"] == tool["url"]

        assert {name: r.status_code for name, r in not_found.items()} == {name: 404 for name in not_found}
        assert all(r.json()["error"].startswith("no ") for r in not_found.values())
        assert absent == {name: True for name in absent}
        # A still sees all of it
        assert ca.get(f"/company-automation/jobs/{job['job_id']}").status_code == 200
        assert ca.get(f"/company-automation/training/{training['request_id']}").status_code == 200
    # a foreign key id with another company's secret is no key at all
    forged = issue_key(b).key.split(".")[0] + "." + key_a.split(".", 1)[1]
    with api.client(forged) as cf:
        refused_forged = cf.get("/company-automation/tools").status_code
    assert refused_forged == 401
    total = len(not_found) + len(absent) + 1
    print(f"\nTENANCY refused={total} of {total} cross-company attempts "
          f"({len(not_found)} answered 404, {len(absent)} absent from B's answers, 1 forged key 401)")
