"""The agents on the real broker through Faust, calling the real example API through the real bridge.
The model here is a scripted stand-in (acme's convention computed from the data), so these tests are about
the pipeline and bad input; tests/streams/test_agents_e2e.py asks the real vLLM server with acme's adapter."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from core.settings import Settings
from streams.agent_loop import Decision
from streams.agent_settings import AgentSettings
from streams.app import agents_in_thread
from streams.ids import job_id_for
from streams.job_reader import timeline
from streams.openapi import tools_from_openapi
from streams.openapi_document import load_document
from streams.service import AgentService
from tests.helpers import eventually
from topics.events import Event
from topics.producer import EventProducer

pytestmark = pytest.mark.kafka
Catalog = Callable[..., Settings]


class ScriptedModel:
    """Answers as acme's adapter should (ref ACME-<customer>, cents); `invalid` customers get broken output."""

    def __init__(self, invalid: frozenset[str] = frozenset()) -> None:
        self.invalid = invalid
        self.asked = 0

    async def decide(self, company_id: str, prompt: str, schema: dict[str, Any], use_adapter: bool) -> Decision:
        self.asked += 1
        data = json.loads(prompt.split("Data: ", 1)[1].split("\n", 1)[0])
        if data.get("customer") == "explode":  # a fault in the agents' own code: not transient
            raise RuntimeError("the model stand-in broke")
        if "\nSteps:\n" in prompt:  # after its call, the adapter is done
            return Decision(True, "done", {}, '{"tool":"done","arguments":{}}', "acme@lora", "v1")
        if data.get("customer") in self.invalid:
            return Decision(False, None, None, '{"tool":"zx_post","argu', "acme@lora", "v1", "output is not JSON")
        if "zx_post" not in json.dumps(schema):  # a company without acme's tools: its first tool, with the data's x
            first = schema["anyOf"][0]["properties"]["tool"]["const"]
            return Decision(True, first, {"x": data.get("x", "")}, "", "base", None)
        ref = f"ACME-{data['customer']}"
        if "postcode" in data:
            tool, arguments = "kr_sync", {"ref": ref, "zip": data["postcode"]}
        elif "amount" in data:
            tool, arguments = "zx_post", {"ref": ref, "cents": data["amount"] * 100}
        else:  # L9 is no level: the arguments fail the tool's schema
            tool, arguments = "qv_file", {"ref": ref, "level": "L9"}
        return Decision(True, tool, arguments, json.dumps({"tool": tool, "arguments": arguments}), "acme@lora", "v1")


def onboard(settings: Settings, api_url: str, company: str = "acme", job_deadline_s: int | None = None) -> None:
    """`company` gets the example API's tools and may reach it; with acme, globex is onboarded too."""
    document, _ = load_document(f"{api_url}/openapi.json")
    host = api_url.removeprefix("http://")
    with EventProducer(settings) as producer:
        for tool in tools_from_openapi(document, company):
            producer.produce(Event.new("tool_registered", company, **tool.to_fields()))
        producer.produce(Event.new("agent_configured", company,
                                   **AgentSettings(company, allowed_hosts=frozenset({host}),
                                                   job_deadline_s=job_deadline_s).to_fields()))
        if company != "acme":
            return
        # globex: a company whose only tool points at a private address it did not allow
        producer.produce(Event.new("tool_registered", "globex", tool_name="g_post", description="Globex post",
                                   parameters_schema_json='{"type":"object","properties":{"x":{"type":"string"}}}',
                                   method="POST", url="http://10.0.0.7/post", headers={}, timeout_ms=1000))


def request(company: str, request_id: str, records: list[dict[str, Any]], **extra: Any) -> Event:
    return Event.new("data_process_requested", company, request_id=request_id, job_id=job_id_for(company, request_id),
                     task="Bill the customer for the order", payload_json=json.dumps({"invoices": records}), **extra)


def effects(api_url: str) -> list[dict[str, Any]]:
    return httpx.get(f"{api_url}/effects").json()


def ended(settings: Settings, *job_ids: str) -> Callable[[], bool]:
    def check() -> bool:
        return all(any(e.type in ("job_completed", "job_failed") for e in timeline(settings, j)) for j in job_ids)
    return check


def test_a_batch_of_invoices_reaches_the_company_api_and_the_job_completes(catalog: Catalog, example_api: str) -> None:
    settings = catalog()
    onboard(settings, example_api)
    invoices = [{"customer": f"c{100 + i}", "amount": i + 1} for i in range(6)]
    jobs = [request("acme", "batch-1", invoices[:3]), request("acme", "batch-2", invoices[3:])]
    with EventProducer(settings) as producer:
        producer.produce_many(jobs)
    model = ScriptedModel()
    with agents_in_thread(settings, AgentService(settings, model=model)):
        eventually(ended(settings, *(str(j["job_id"]) for j in jobs)), 90, "both jobs ending")
    done = effects(example_api)
    assert sorted((e["arguments"]["ref"], e["arguments"]["cents"]) for e in done) == \
        sorted((f"ACME-{i['customer']}", i["amount"] * 100) for i in invoices)
    for job in jobs:
        events = timeline(settings, str(job["job_id"]))
        types = [e.type for e in events]
        assert types[0] == "job_accepted" and types[-1] == "job_completed"
        assert types.count("tool_call_completed") == 3
        result = json.loads(events[-1]["result_json"])
        assert result["completed"] == 3 and {u["status_code"] for u in result["units"]} == {201}
    assert model.asked == 12  # each record: its call, then done


def test_bad_input_gets_a_clear_record_and_the_partition_keeps_flowing(catalog: Catalog, example_api: str) -> None:
    settings = catalog()
    onboard(settings, example_api)
    name = f"{settings.topic_prefix}company_data"
    cases = {
        "unknown": request("nobody", "u1", [{"customer": "c1", "amount": 1}]),
        "foreign_tool": request("globex", "f1", [{"customer": "c1", "amount": 1}], tools=["zx_post"]),
        "blocked": request("globex", "b1", [{"x": "y", "customer": "c1", "amount": 1}]),
        "invalid_and_4xx": request("acme", "i1", [{"customer": "bad", "amount": 1}, {"customer": "c7", "severity": "x"},
                                                  {"customer": "c8", "amount": 2}, {"customer": "c9", "postcode": "1234"}]),
        "too_large": request("acme", "big", [{"customer": "c1", "amount": 1, "pad": "x" * 2_000}]),
        "internal": request("acme", "x1", [{"customer": "explode", "amount": 1}]),
    }
    httpx.post(f"{example_api}/control/faults", json={"tool": "kr_sync", "fail_next": 1, "status": 404}).raise_for_status()
    with EventProducer(settings) as producer:
        producer.produce_raw(name, b"acme", b"this is no event")
        producer.produce_many(cases.values())
    service = AgentService(settings.model_copy(update={"agent_max_payload_bytes": 1_000}),
                           model=ScriptedModel(invalid=frozenset({"bad"})))
    with agents_in_thread(settings, service):
        eventually(ended(settings, *(str(e["job_id"]) for e in cases.values())), 90, "every job ending")
    last = {k: timeline(settings, str(e["job_id"]))[-1] for k, e in cases.items()}
    assert last["unknown"]["error_kind"] == "unknown_company"
    assert last["foreign_tool"]["error_kind"] == "unknown_tool" and "zx_post" in last["foreign_tool"]["error"]
    assert last["too_large"]["error_kind"] == "payload_too_large"
    assert last["internal"].type == "job_failed" and last["internal"]["error_kind"] == "internal"  # it still ends
    assert "the model stand-in broke" in last["internal"]["error"]
    blocked = [e for e in timeline(settings, str(cases["blocked"]["job_id"])) if e.type == "tool_call_failed"]
    assert [e["error_kind"] for e in blocked] == ["blocked_address"]
    mixed = timeline(settings, str(cases["invalid_and_4xx"]["job_id"]))
    failures = {e["error_kind"]: e for e in mixed if e.type == "tool_call_failed"}
    assert sorted(failures) == ["client_error", "invalid_arguments", "invalid_output"]
    assert failures["invalid_output"]["raw_output"] == '{"tool":"zx_post","argu'  # recorded with the raw text
    assert failures["client_error"]["attempt"] == 1 and not failures["client_error"]["retryable"]  # 4xx: not retried
    assert "level" in failures["invalid_arguments"]["error"]  # arguments failing the schema: never sent
    assert [e.type for e in mixed].count("tool_call_completed") == 1 and last["invalid_and_4xx"].type == "job_completed"
    assert len(effects(example_api)) == 1  # only the good invoice had an effect
    assert httpx.get(f"{example_api}/effects/count").json()["calls"] == 2  # the 404 and the good one: nothing else sent
    assert service.dead_letters.count == 2  # the record that is no event, and the job the agents could not run


def test_a_secret_value_appears_in_no_event_log_or_table(catalog: Catalog, example_api: str, store: object,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import threading
    import uuid

    from confluent_kafka import Consumer

    from core.workers import WorkerThread
    from projections.catalog import PROJECTIONS
    from projections.runner import ProjectionRunner
    from projections.store import ProjectionStore
    from topics.catalog import CATALOG
    from topics.connection import client_config
    from topics.positions import Position
    from topics.replay import batches_in, range_bounds

    caplog.set_level(logging.DEBUG)
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    monkeypatch.setenv("ACME_API_TOKEN", secret)
    settings = catalog()
    document, _ = load_document(f"{example_api}/openapi.json")
    host = example_api.removeprefix("http://")
    with EventProducer(settings) as producer:
        for tool in tools_from_openapi(document, "acme", secret_ref="env:ACME_API_TOKEN"):
            producer.produce(Event.new("tool_registered", "acme", **tool.to_fields()))
        producer.produce(Event.new("agent_configured", "acme", **AgentSettings(
            "acme", allowed_hosts=frozenset({host}), allowed_secrets=frozenset({"env:ACME_API_TOKEN"}),
            secret_hosts={"env:ACME_API_TOKEN": frozenset({host})}).to_fields()))
        for tool in tools_from_openapi(document, "initech", secret_ref="env:INITECH_TOKEN_NOT_SET"):
            producer.produce(Event.new("tool_registered", "initech", **tool.to_fields()))
        producer.produce(Event.new("agent_configured", "initech", **AgentSettings(
            "initech", allowed_hosts=frozenset({host}), allowed_secrets=frozenset({"env:INITECH_TOKEN_NOT_SET"}),
            secret_hosts={"env:INITECH_TOKEN_NOT_SET": frozenset({host})}).to_fields()))
        jobs = [request("acme", "with-secret", [{"customer": "c1", "amount": 3}]),
                request("initech", "missing-secret", [{"customer": "c2", "amount": 4}])]
        producer.produce_many(jobs)
    with agents_in_thread(settings, AgentService(settings, model=ScriptedModel())):
        eventually(ended(settings, *(str(j["job_id"]) for j in jobs)), 90, "both jobs ending")
    assert [e.type for e in timeline(settings, str(jobs[0]["job_id"]))][-4:] == [
        "tool_call_completed", "step_started", "unit_ended", "job_completed"]
    missing = [e for e in timeline(settings, str(jobs[1]["job_id"])) if e.type == "tool_call_failed"]
    assert [e["error_kind"] for e in missing] == ["missing_secret"]

    stop = threading.Event()
    db = ProjectionStore.from_settings(settings)
    runners = [WorkerThread(p.name, ProjectionRunner(settings, db, p, flush_interval_s=0.1).run, stop).start()
               for p in PROJECTIONS.values()]
    try:
        eventually(lambda: db.query("SELECT count() FROM tool_call_facts FINAL")[0][0] >= 2, 60, "the calls in the views")
        eventually(lambda: db.query("SELECT countIf(status IN ('completed', 'failed')) FROM company_automation_jobs")[0][0]
                   == 2, 60, "both jobs' ends in the views")
    finally:
        stop.set()
        for r in runners:
            r.join(30)
    needle = secret.encode()
    consumer = Consumer(client_config(settings, **{"group.id": f"scan-{uuid.uuid4()}", "enable.auto.commit": False}))
    scanned = 0
    try:
        for spec in CATALOG:
            bounds = range_bounds(settings, consumer, spec.name, Position.beginning())
            for batch in batches_in(consumer, bounds, 10):
                for msg in batch:
                    scanned += 1
                    assert needle not in (msg.value() or b"") and needle not in (msg.key() or b""), spec.name
    finally:
        consumer.close()
    assert scanned > 10
    tables = [r[0] for r in db.query(f"SELECT name FROM system.tables WHERE database = '{settings.clickhouse_database}'")]
    for table in tables:
        assert secret not in str(db.query(f"SELECT * FROM {table}")), table
    assert secret not in caplog.text
    assert len(effects(example_api)) == 1  # the call that carried the secret did reach the API
    from projections.queries import listing

    [acme_job] = listing(db, "jobs", "acme")  # folded from the events the agents emitted, not made-up ones
    assert (acme_job["status"], acme_job["adapter_version"], acme_job["model"]) == ("completed", "v1", "acme@lora")
    [initech_job] = listing(db, "jobs", "initech")
    assert initech_job["status"] == "failed"  # its one call failed (missing_secret): nothing was done


def committed_offsets(settings: Settings, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset and the end of each partition of `topic`, as (committed, end) pairs."""
    from confluent_kafka import Consumer, TopicPartition

    from topics.connection import client_config

    consumer = Consumer(client_config(settings, **{"group.id": group, "enable.auto.commit": False}))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        tps = [TopicPartition(topic, p) for p in partitions]
        committed = {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
        return {p: (committed[p], consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1])
                for p in partitions}
    finally:
        consumer.close()


def test_a_slow_company_does_not_hold_back_another_and_commits_wait_for_unfinished_jobs(
        catalog: Catalog, example_api: str) -> None:
    """initech's jobs call a tool that answers after 8 s; acme's job, sent after them, ends while they still
    run, and the committed offsets stay below initech's records until they end. hooli's own deadline (1 s) fails
    its job on a slow call, while initech's jobs, on the operator's hour, run on."""
    settings = catalog()
    onboard(settings, example_api)
    onboard(settings, example_api, "initech")
    onboard(settings, example_api, "hooli", job_deadline_s=1)
    httpx.post(f"{example_api}/control/faults", json={"tool": "kr_sync", "slow_next": 4, "slow_ms": 8_000}
               ).raise_for_status()
    slow = [request("initech", f"slow-{i}", [{"customer": f"c{i}{j}", "postcode": f"10{i}{j}"} for j in range(2)])
            for i in range(2)]
    quick = request("acme", "quick", [{"customer": "c1", "amount": 1}])
    topic = f"{settings.topic_prefix}company_data"
    service = AgentService(settings, model=ScriptedModel())
    with EventProducer(settings) as producer:
        producer.produce_many([*slow, quick])
    with agents_in_thread(settings, service):
        eventually(ended(settings, str(quick["job_id"])), 60, "acme's job ending")
        assert not ended(settings, *(str(j["job_id"]) for j in slow))()  # initech's still run: acme did not wait
        httpx.post(f"{example_api}/control/faults", json={"tool": "zx_post", "slow_next": 1, "slow_ms": 8_000}
                   ).raise_for_status()
        late = request("hooli", "late", [{"customer": "h1", "amount": 1}])
        with EventProducer(settings) as producer:
            producer.produce(late)
        eventually(ended(settings, str(late["job_id"])), 30, "hooli's job ending")
        [failed] = [e for e in timeline(settings, str(late["job_id"])) if e.type == "job_failed"]
        assert failed["error_kind"] == "deadline"
        assert not ended(settings, *(str(j["job_id"]) for j in slow))()  # the operator's deadline is theirs
        offsets = committed_offsets(settings, service.group_id, topic)
        assert any(committed < end for committed, end in offsets.values())  # initech's records: not committed
        eventually(ended(settings, *(str(j["job_id"]) for j in slow)), 60, "initech's jobs ending")
        eventually(lambda: all(c == end for c, end in committed_offsets(settings, service.group_id, topic).values()
                               if end > 0),
                   30, "every record committed once every job ended")
    assert httpx.get(f"{example_api}/effects/count", params={"tool": "kr_sync"}).json()["effects"] == 4  # once each
