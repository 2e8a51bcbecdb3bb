"""The agent loop as pure code, with its boundaries faked: units, deterministic events, crash resume from the
fold of recorded events, invalid model output, waiting out an inference outage, and what bad input gets."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import pytest

from inference.errors import InferenceUnavailable
from streams.agent_loop import Decision, JobLimits, JobRun, JobRunner
from streams.agent_settings import AgentSettings
from streams.ids import idempotency_key, job_id_for
from streams.tools import Tool
from topics.events import Event

SCHEMA = {"type": "object", "properties": {"ref": {"type": "string"}, "cents": {"type": "integer"}},
          "required": ["ref", "cents"]}
TOOLS = {"zx_post": Tool("acme", "zx_post", "Acme endpoint 7", SCHEMA, "POST", "http://127.0.0.1:9/zx_post")}


@dataclass
class Outcome:
    ok: bool = True
    status_code: int | None = 201
    result_json: str = '{"id": 1}'
    error: str = ""
    error_kind: str = ""
    retryable: bool = False
    attempts: int = 1
    latency_ms: float = 1.0


class FakeModel:
    def __init__(self, outages: int = 0, valid: bool = True) -> None:
        self.asked: list[str] = []
        self.outages = outages
        self.valid = valid

    async def decide(self, company_id: str, prompt: str, schema: dict[str, Any], use_adapter: bool) -> Decision:
        if self.outages:
            self.outages -= 1
            raise InferenceUnavailable("gateway down")
        self.asked.append(prompt)
        data = json.loads(prompt.split("Data: ", 1)[1].split("\n", 1)[0])
        if not self.valid:
            return Decision(False, None, None, '{"tool":"zx_po', "acme@lora", "v1", "output is not JSON")
        return Decision(True, "zx_post", {"ref": f"ACME-{data['customer']}", "cents": data["amount"] * 100},
                        "{...}", "acme@lora" if use_adapter else "base", "v1" if use_adapter else None)


class FakeBridge:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], str]] = []

    async def call(self, tool: Tool, arguments: dict[str, Any], key: str, agent: AgentSettings) -> Outcome:
        self.calls.append((tool.name, arguments, key))
        return Outcome()


class Log:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.acked: list[str] = []

    async def emit(self, event: Event, wait: bool) -> None:
        self.events.append(event)
        if wait:
            self.acked.append(event.type)


def request(n: int = 3, **extra: Any) -> Event:
    payload = {"task": "process_invoices", "invoices": [{"customer": f"c{100 + i}", "amount": i + 1} for i in range(n)]}
    return Event.new("data_process_requested", "acme", request_id="r1", job_id=job_id_for("acme", "r1"),
                     task="Bill the customer for the order", payload_json=json.dumps(payload), **extra)


def run(req: Event, model: FakeModel, bridge: FakeBridge, log: Log, history: list[Event] | None = None,
        tools: dict[str, Tool] | None = None, agent: AgentSettings | None = None, known: bool = True,
        limits: JobLimits = JobLimits(model_retry_pause_s=0.01)) -> Any:
    job = JobRun(req, TOOLS if tools is None else tools, agent or AgentSettings("acme"), known)
    return asyncio.run(JobRunner(model, bridge, log.emit, limits).run(job, history))


def test_each_record_is_one_decision_and_one_call_and_the_job_completes() -> None:
    model, bridge, log = FakeModel(), FakeBridge(), Log()
    state = run(request(3), model, bridge, log)
    assert state.finished == "completed" and len(model.asked) == 3 and len(bridge.calls) == 3
    assert sorted(c[1]["ref"] for c in bridge.calls) == ["ACME-c100", "ACME-c101", "ACME-c102"]
    types = [e.type for e in log.events]
    assert types[0] == "job_accepted" and types[-1] == "job_completed"
    assert types.count("step_started") == types.count("tool_call_requested") == types.count("tool_call_completed") == 3
    assert log.acked.count("tool_call_requested") == 3  # acknowledged before each call was sent
    result = json.loads(log.events[-1]["result_json"])
    assert result["completed"] == 3 and result["failed"] == 0
    data_lines = [json.loads(next(line for line in p.splitlines() if line.startswith("Data: "))[len("Data: "):])
                  for p in model.asked]
    assert data_lines == [{"customer": f"c{100 + i}", "amount": i + 1} for i in range(3)]  # one record per prompt, in order


def test_every_list_of_records_is_processed_and_what_is_not_a_record_is_reported() -> None:
    model, bridge, log = FakeModel(), FakeBridge(), Log()
    payload = {"task": "process_invoices", "invoices": [{"customer": "c1", "amount": 1}],
               "late": [{"customer": "c2", "amount": 2}], "batch": "b7", "tags": ["x"]}
    req = Event.new("data_process_requested", "acme", request_id="r1", job_id=job_id_for("acme", "r1"), task="bill",
                    payload_json=json.dumps(payload))
    state = run(req, model, bridge, log)
    assert state.finished == "completed" and sorted(c[1]["ref"] for c in bridge.calls) == ["ACME-c1", "ACME-c2"]
    data = [json.loads(p.split("Data: ", 1)[1].split("\n", 1)[0]) for p in model.asked]
    assert sorted(d["customer"] for d in data) == ["c1", "c2"] and all(d["batch"] == "b7" and "task" not in d for d in data)
    result = json.loads(log.events[-1]["result_json"])
    assert [u["source"] for u in result["units"]] == ["invoices[0]", "late[0]"]
    assert result["left_out"] == [{"where": "tags", "why": "a list of values, not of records (objects)"}]


def test_events_are_deterministic_so_a_rerun_emits_the_same_events() -> None:
    first, second = Log(), Log()
    run(request(2), FakeModel(), FakeBridge(), first)
    run(request(2), FakeModel(), FakeBridge(), second)
    assert sorted(e.event_id for e in first.events) == sorted(e.event_id for e in second.events)


@pytest.mark.parametrize("cut", range(1, 12))
def test_a_job_resumes_from_any_point_without_asking_or_calling_twice(cut: int) -> None:
    full = Log()
    run(request(3), FakeModel(), FakeBridge(), full)
    history = full.events[:cut]
    model, bridge, log = FakeModel(), FakeBridge(), Log()
    state = run(request(3), model, bridge, log, history=history)
    assert state.finished == "completed"
    decided = {e["step"] for e in history if e.type == "tool_call_requested"}
    completed = {e["step"] for e in history if e.type == "tool_call_completed"}
    assert len(model.asked) == 3 - len(decided)  # a recorded decision is not asked again
    keys = {c[2] for c in bridge.calls}
    assert keys == {idempotency_key("acme", full.events[0]["job_id"], s) for s in range(0, 300, 100)
                    if s not in completed}  # requested-but-not-completed calls are resent, completed ones never
    assert {e.event_id for e in full.events} >= {e.event_id for e in log.events}


def test_invalid_model_output_is_recorded_with_the_raw_text_and_never_sent() -> None:
    bridge, log = FakeBridge(), Log()
    state = run(request(2), FakeModel(valid=False), bridge, log)
    failed = [e for e in log.events if e.type == "tool_call_failed"]
    assert bridge.calls == [] and len(failed) == 2
    assert {e["error_kind"] for e in failed} == {"invalid_output"} and failed[0]["raw_output"] == '{"tool":"zx_po'
    assert state.finished == "completed" and json.loads(log.events[-1]["result_json"])["failed"] == 2


def test_the_job_waits_out_an_inference_outage() -> None:
    model, log = FakeModel(outages=4), Log()
    state = run(request(1), model, FakeBridge(), log)
    assert state.finished == "completed" and not any(e.type == "job_failed" for e in log.events)


@pytest.mark.parametrize(("kwargs", "kind"), [
    ({"known": False, "tools": {}}, "unknown_company"),
    ({"tools": {}}, "no_tools"),
    ({"req": request(1, tools=["other_company_tool"])}, "unknown_tool"),
    ({"agent": AgentSettings("acme", step_limit=2)}, "step_limit"),
    ({"limits": JobLimits(max_payload_bytes=10)}, "payload_too_large"),
    ({"req": Event.new("data_process_requested", "acme", request_id="r1", job_id=job_id_for("acme", "r1"), task="t",
                       payload_json="[]")}, "no_records"),
])
def test_bad_requests_fail_the_job_with_the_reason_and_call_nothing(kwargs: dict[str, Any], kind: str) -> None:
    model, bridge, log = FakeModel(), FakeBridge(), Log()
    req = kwargs.pop("req", request(3))
    state = run(req, model, bridge, log, **kwargs)
    assert state.finished == "failed" and log.events[-1].type == "job_failed"
    assert log.events[-1]["error_kind"] == kind
    assert model.asked == [] and bridge.calls == []


def test_use_adapter_false_asks_the_base() -> None:
    log = Log()
    run(request(1, use_adapter=False), FakeModel(), FakeBridge(), log)
    assert [e["model"] for e in log.events if e.type == "step_started"] == ["base"]
