"""The seed's own interface over the real broker and chDB: `cda.client` with the seed's names, the seed's call
shape (the task inside `data`, `company_id` in the body, `training_data`), and every list of records in a
payload, with what is not a record named rather than dropped."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from cda.client import CompanyAutomation, InvalidRequest, SyncCompanyAutomation, Unavailable, WrongCompany
from tests.api.api_support import ApiStack, events_of

pytestmark = pytest.mark.kafka

TOOL = {"name": "zx_post", "description": "bill a customer", "url": "https://acme.example/bill",
        "parameters": {"type": "object", "properties": {"ref": {"type": "string"}}}}
LABELLED = [{"task": "Bill the customer", "data": {"customer": f"c{i}", "amount": i}, "tool": "zx_post",
             "arguments": {"ref": f"ACME-c{i}"}} for i in range(3)]


def test_the_seed_shape_through_the_api(api: ApiStack) -> None:
    company, key = api.company()
    with api.client(key) as client:
        assert client.get("/company-automation/key").json()["company_id"] == company
        seed = {"company_id": company, "use_adapter": True,
                "data": {"task": "process_invoices", "currency": "EUR", "invoices": [{"customer": "c1", "amount": 3}],
                         "refunds": [{"customer": "c2", "amount": 1}], "notes": ["call back"]}}
        accepted = client.post("/company-automation/process", json=seed)
        assert accepted.status_code == 202, accepted.text
        trained = client.post("/company-automation/train-adapter", json={"company_id": company, "training_data": LABELLED})
        assert trained.status_code == 202, trained.text
        other = client.post("/company-automation/process", json={**seed, "company_id": "globex"})
        assert other.status_code == 403 and "body.company_id" in other.json()["error"]
    request = next(e for e in events_of(api.settings, "company_data") if e.company_id == company)
    assert request["task"] == "process_invoices"  # taken out of the data
    assert json.loads(str(request["payload_json"])) == {k: v for k, v in seed["data"].items() if k != "task"}  # type: ignore[union-attr]
    training = next(e for e in events_of(api.settings, "lora_training_requests") if e.company_id == company)
    assert [x["tool_name"] for x in training["examples"]] == ["zx_post"] * 3  # type: ignore[union-attr]


def test_the_client_speaks_the_seeds_names_checks_the_company_and_types_its_errors(api: ApiStack) -> None:
    company, key = api.company()

    async def seed_calls() -> None:
        async with CompanyAutomation(api.url, key) as automation:
            assert await automation.register_company_tools(company_id=company, tools=[TOOL]) == ["zx_post"]
            run = await automation.train_company_adapter(company_id=company, training_data=LABELLED)
            assert run.status == "requested" and run.gate == "pending"
            result = await automation.process_company_data(
                company_id=company, data={"task": "process_invoices", "invoices": [{"customer": "c1", "amount": 3}]},
                use_adapter=True, wait=False)
            assert result.status == "queued" and result.job_id and not result.done
            assert (await automation.list_adapters(company_id=company))["versions"] == []
            with pytest.raises(WrongCompany, match=f"belongs to company '{company}', not 'globex'"):
                await automation.process_company_data(company_id="globex", data={"a": 1})
            with pytest.raises(InvalidRequest, match="body.data: no records"):
                await automation.process_company_data(company_id=company, data={"task": "x"})

    asyncio.run(seed_calls())
    with SyncCompanyAutomation(api.url, key) as automation:  # the same without an event loop
        assert automation.list_adapters(company)["active"] is None


def test_the_client_retries_as_retry_after_says_then_gives_up_typed() -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "0"}, json={"error": "rate limit"}),
                    httpx.Response(200, json={"company_id": "acme", "key_id": "k"}),
                    httpx.Response(200, json={"active": None, "versions": [], "refusals": []})])
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return next(answers)

    async def calls() -> None:
        async with CompanyAutomation("http://cda.test", "cda_k.s", transport=httpx.MockTransport(handler)) as automation:
            assert (await automation.list_adapters("acme"))["active"] is None
        down = httpx.MockTransport(lambda _: httpx.Response(503, json={"error": "not ready"}))
        async with CompanyAutomation("http://cda.test", "cda_k.s", transport=down, retries=1) as automation:
            with pytest.raises(Unavailable, match="503: not ready"):
                await automation.list_adapters("acme")

    asyncio.run(calls())
    assert sent == ["/company-automation/key", "/company-automation/key", "/company-automation/adapters"]


def test_records_of_several_calls_declines_and_reserved_names_through_the_api(api: ApiStack) -> None:
    """`calls` and `tool: "none"` in training data and in `expected` reach the log as the trainer and the agents
    read them; a tool named like a model answer is refused naming the field."""
    company, key = api.company()
    unit = {"task": "Bill the customer", "data": {"email": "a@x.io", "amount": 5}, "calls": [
        {"tool": "find_account", "arguments": {"email": "a@x.io"}, "result": {"account_id": "AC-1"}},
        {"tool": "bill_account", "arguments": {"account_id": "AC-1", "cents": 500}, "result": {"id": 3}}]}
    with api.client(key) as client:
        trained = client.post("/company-automation/train-adapter", json={"examples": [
            unit, {"task": "Translate the note", "data": {"note": "hi"}, "tool": "none"}]})
        assert trained.status_code == 202, trained.text
        reserved = client.post("/company-automation/register-tools", json={"tools": [{**TOOL, "name": "done"}]})
        assert reserved.status_code == 422 and "body.tools[0]" in reserved.text and "reserved" in reserved.text
        mixed = client.post("/company-automation/process", json={
            "task": "bill", "data": {"records": [{"email": "a@x.io", "amount": 5}, {"note": "hi"}]},
            "expected": [{"calls": [{"tool": "find_account", "arguments": {"email": "a@x.io"}}]}, {"tool": "none"}]})
        assert mixed.status_code == 202, mixed.text
        both = client.post("/company-automation/process", json={
            "task": "bill", "data": {"records": [{"a": 1}]}, "expected": [{"tool": "x", "calls": [{"tool": "x"}]}]})
        assert both.status_code == 422 and "body.expected" in both.text
    training = next(e for e in events_of(api.settings, "lora_training_requests") if e.company_id == company)
    examples = training["examples"]  # type: ignore[index]
    assert [x["tool_name"] for x in examples] == ["find_account", "bill_account", "done", "none"]
    assert [len(json.loads(x["steps_json"])) for x in examples] == [0, 1, 2, 0]
    assert len({x["unit_key"] for x in examples[:3]}) == 1 and examples[3]["unit_key"] == ""
    request = next(e for e in events_of(api.settings, "company_data") if e.company_id == company)
    assert json.loads(str(request["expected_json"]))[1] == {"arguments": {}, "tool": "none"}
