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
from streams.job_state import fold
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
        if self.valid and "\nSteps:\n" in prompt:
            return Decision(True, "done", {}, '{"tool":"done","arguments":{}}', "acme@lora", "v1")
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


def first_steps(prompts: list[str]) -> list[str]:
    return [p for p in prompts if "\nSteps:\n" not in p]


def test_each_record_is_one_call_then_done_and_the_job_completes() -> None:
    model, bridge, log = FakeModel(), FakeBridge(), Log()
    state = run(request(3), model, bridge, log)
    assert state.finished == "completed" and len(model.asked) == 6 and len(bridge.calls) == 3
    assert sorted(c[1]["ref"] for c in bridge.calls) == ["ACME-c100", "ACME-c101", "ACME-c102"]
    types = [e.type for e in log.events]
    assert types[0] == "job_accepted" and types[-1] == "job_completed"
    assert types.count("tool_call_requested") == types.count("tool_call_completed") == types.count("unit_ended") == 3
    assert types.count("step_started") == 6  # the call, then done after seeing its answer
    later = [p for p in model.asked if "\nSteps:\n" in p]
    assert all('-> {"id":1}' in p.split("Steps:", 1)[1] for p in later)  # the answer is shown to the next step
    assert log.acked.count("tool_call_requested") == 3  # acknowledged before each call was sent
    result = json.loads(log.events[-1]["result_json"])
    assert result["completed"] == 3 and result["failed"] == 0
    data_lines = [json.loads(next(line for line in p.splitlines() if line.startswith("Data: "))[len("Data: "):])
                  for p in first_steps(model.asked)]
    assert data_lines == [{"customer": f"c{100 + i}", "amount": i + 1} for i in range(3)]  # one record per prompt, in order


def test_every_list_of_records_is_processed_and_what_is_not_a_record_is_reported() -> None:
    model, bridge, log = FakeModel(), FakeBridge(), Log()
    payload = {"task": "process_invoices", "invoices": [{"customer": "c1", "amount": 1}],
               "late": [{"customer": "c2", "amount": 2}], "batch": "b7", "tags": ["x"]}
    req = Event.new("data_process_requested", "acme", request_id="r1", job_id=job_id_for("acme", "r1"), task="bill",
                    payload_json=json.dumps(payload))
    state = run(req, model, bridge, log)
    assert state.finished == "completed" and sorted(c[1]["ref"] for c in bridge.calls) == ["ACME-c1", "ACME-c2"]
    data = [json.loads(p.split("Data: ", 1)[1].split("\n", 1)[0]) for p in first_steps(model.asked)]
    assert sorted(d["customer"] for d in data) == ["c1", "c2"] and all(d["batch"] == "b7" and "task" not in d for d in data)
    result = json.loads(log.events[-1]["result_json"])
    assert [u["source"] for u in result["units"]] == ["invoices[0]", "late[0]"]
    assert result["left_out"] == [{"where": "tags", "why": "a list of values, not of records (objects)"}]


def test_events_are_deterministic_so_a_rerun_emits_the_same_events() -> None:
    first, second = Log(), Log()
    run(request(2), FakeModel(), FakeBridge(), first)
    run(request(2), FakeModel(), FakeBridge(), second)
    assert sorted(e.event_id for e in first.events) == sorted(e.event_id for e in second.events)


@pytest.mark.parametrize("cut", range(1, 19))
def test_a_job_resumes_from_any_point_without_asking_or_calling_twice(cut: int) -> None:
    full = Log()
    run(request(3), FakeModel(), FakeBridge(), full)
    history = full.events[:cut]
    model, bridge, log = FakeModel(), FakeBridge(), Log()
    state = run(request(3), model, bridge, log, history=history)
    assert state.finished == "completed"
    decided = {e["step"] for e in history if e.type == "tool_call_requested"}
    ended = {e["unit"] for e in history if e.type == "unit_ended"}
    completed = {e["step"] for e in history if e.type == "tool_call_completed"}
    assert len(model.asked) == (3 - len(decided)) + (3 - len(ended))  # a recorded decision is not asked again
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
    assert state.finished == "failed"  # nothing was done: the job failed, naming why
    assert log.events[-1].type == "job_failed" and log.events[-1]["error_kind"] == "units_failed"
    assert "2 of 2" in log.events[-1]["error"] and "invalid_output" in log.events[-1]["error"]


class SomeFail(FakeBridge):
    """Answers 422 to the second record's call."""

    async def call(self, tool: Tool, arguments: dict[str, Any], key: str, agent: AgentSettings) -> Outcome:
        self.calls.append((tool.name, arguments, key))
        if arguments["cents"] == 200:
            return Outcome(ok=False, status_code=422, error="HTTP 422", error_kind="client_error")
        return Outcome()


def test_a_job_with_some_failed_units_ends_partially_failed_with_the_counts() -> None:
    log = Log()
    state = run(request(3), FakeModel(), SomeFail(), log)
    assert state.finished == "partially_failed" and log.events[-1].type == "job_completed"
    result = json.loads(log.events[-1]["result_json"])
    assert (result["completed"], result["failed"]) == (2, 1)
    assert fold(log.events).finished == "partially_failed"  # the fold reads the same from the log


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
    assert [e["model"] for e in log.events if e.type == "step_started"] == ["base"]  # the base takes one step
    [ended] = [e for e in log.events if e.type == "unit_ended"]
    assert (ended["status"], ended["answer"]) == ("completed", "one_step")


# -- several steps per unit, declines, the step limit -------------------------------------------------------------
STEP_TOOLS = {
    "find_account": Tool("acme", "find_account", "Find an account", {"type": "object", "properties": {
        "email": {"type": "string"}}, "required": ["email"]}, "GET", "http://127.0.0.1:9/accounts"),
    "bill_account": Tool("acme", "bill_account", "Bill an account", {"type": "object", "properties": {
        "account": {"type": "string"}, "cents": {"type": "integer"}}, "required": ["account", "cents"]},
        "POST", "http://127.0.0.1:9/bill"),
}


class StepModel:
    """Looks the account up by e-mail, bills the account the lookup returned, then answers done; declines a
    record with a `note` only; keeps calling for a record marked `loop`; names a foreign tool for `foreign`."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def decide(self, company_id: str, prompt: str, schema: dict[str, Any], use_adapter: bool) -> Decision:
        self.asked.append(prompt)
        data = json.loads(prompt.split("Data: ", 1)[1].split("\n", 1)[0])
        steps = prompt.split("\nSteps:\n", 1)[1].split("\nCall: ")[0].split("\n") if "\nSteps:\n" in prompt else []
        consts = {o["properties"]["tool"]["const"] for o in schema["anyOf"]}
        assert ("none" in consts) == (not steps) and ("done" in consts) == bool(steps)  # the answer each step may give

        def answer(tool: str, arguments: dict[str, Any]) -> Decision:
            return Decision(True, tool, arguments, json.dumps({"tool": tool, "arguments": arguments}), "acme@lora", "v1")

        if "note" in data:
            return answer("none", {})
        if "loop" in data:
            return answer("find_account", {"email": data["loop"]})
        if "foreign" in data and steps:
            return answer("other_company_tool", {})
        if not steps:
            return answer("find_account", {"email": data.get("email") or data.get("foreign")})
        if len(steps) == 1:
            found = json.loads(steps[0].split(" -> ", 1)[1])
            return answer("bill_account", {"account": found["account_id"], "cents": data["amount"] * 100})
        return answer("done", {})


class StepBridge(FakeBridge):
    async def call(self, tool: Tool, arguments: dict[str, Any], key: str, agent: AgentSettings) -> Outcome:
        self.calls.append((tool.name, arguments, key))
        if tool.name == "find_account":
            return Outcome(result_json=json.dumps({"account_id": f"A-{arguments['email'].split('@')[0]}",
                                                   "api_token": "s3cret"}))
        return Outcome(result_json='{"billed": true}')


def step_request(records: list[dict[str, Any]], expected: list[dict[str, Any]] | None = None) -> Event:
    return Event.new("data_process_requested", "acme", request_id="r2", job_id=job_id_for("acme", "r2"),
                     task="Bill the customer", payload_json=json.dumps({"records": records}),
                     expected_json=json.dumps(expected) if expected is not None else None)


def test_a_unit_looks_up_then_acts_with_what_the_lookup_returned_then_answers_done() -> None:
    model, bridge, log = StepModel(), StepBridge(), Log()
    expected = [{"calls": [{"tool": "find_account", "arguments": {"email": "ann@x.io"}},
                           {"tool": "bill_account", "arguments": {"account": "A-ann", "cents": 500}}]}]
    state = run(step_request([{"email": "ann@x.io", "amount": 5}], expected), model, bridge, log, tools=STEP_TOOLS)
    assert state.finished == "completed"
    assert [(c[0], c[1]) for c in bridge.calls] == [("find_account", {"email": "ann@x.io"}),
                                                    ("bill_account", {"account": "A-ann", "cents": 500})]
    assert len(model.asked) == 3 and '"api_token":"[redacted]"' in model.asked[1]  # the answer shown, its secret not
    assert "s3cret" not in "".join(model.asked)
    result = json.loads(log.events[-1]["result_json"])
    [unit] = result["units"]
    assert unit["status"] == "completed" and unit["answer"] == "done" and [c["tool"] for c in unit["calls"]] == [
        "find_account", "bill_account"] and result["right"] is True
    assert len({c[2] for c in bridge.calls}) == 2  # each call its own Idempotency-Key


def test_no_tool_fits_skips_the_unit_and_sends_nothing() -> None:
    model, bridge, log = StepModel(), StepBridge(), Log()
    state = run(step_request([{"note": "say hi"}, {"email": "bo@x.io", "amount": 1}], [{"tool": "none"}, {"calls": [
        {"tool": "find_account", "arguments": {"email": "bo@x.io"}},
        {"tool": "bill_account", "arguments": {"account": "A-bo", "cents": 100}}]}]), model, bridge, log, tools=STEP_TOOLS)
    result = json.loads(log.events[-1]["result_json"])
    assert state.finished == "completed" and result["skipped"] == 1 and result["completed"] == 1
    skipped = result["units"][0]
    assert skipped["status"] == "skipped" and skipped["calls"] == [] and "no tool" in skipped["error"]
    assert all(c[1].get("email") != "say hi" for c in bridge.calls) and len(bridge.calls) == 2
    assert result["right"] is True


def test_a_unit_that_never_answers_done_fails_step_limit_and_keeps_its_calls() -> None:
    model, bridge, log = StepModel(), StepBridge(), Log()
    state = run(step_request([{"loop": "cy@x.io"}]), model, bridge, log, tools=STEP_TOOLS,
                limits=JobLimits(model_retry_pause_s=0.01, unit_steps=3))
    unit = state.unit(0).summary()
    assert unit["status"] == "failed" and unit["error_kind"] == "step_limit" and len(unit["calls"]) == 3
    assert len(bridge.calls) == 3 and len(model.asked) == 3


def test_a_later_step_naming_a_tool_of_another_company_fails_invalid_output_and_sends_nothing_more() -> None:
    model, bridge, log = StepModel(), StepBridge(), Log()
    state = run(step_request([{"foreign": "di@x.io", "amount": 1}]), model, bridge, log, tools=STEP_TOOLS)
    unit = state.unit(0).summary()
    assert unit["status"] == "failed" and unit["error_kind"] == "invalid_output"
    assert [c[0] for c in bridge.calls] == ["find_account"]  # the lookup made before it is kept


@pytest.mark.parametrize("cut", range(1, 10))
def test_a_multi_step_unit_resumes_from_any_point_without_repeating_a_completed_call(cut: int) -> None:
    full = Log()
    run(step_request([{"email": "ed@x.io", "amount": 2}]), StepModel(), StepBridge(), full, tools=STEP_TOOLS)
    history = [e for e in full.events if e.type != "memory_written"][:cut]
    model, bridge, log = StepModel(), StepBridge(), Log()
    state = run(step_request([{"email": "ed@x.io", "amount": 2}]), model, bridge, log, history=history, tools=STEP_TOOLS)
    assert state.finished == "completed"
    completed = {e["step"] for e in history if e.type == "tool_call_completed"}
    job = full.events[0]["job_id"]
    assert {c[2] for c in bridge.calls} == {idempotency_key("acme", job, s) for s in (0, 1) if s not in completed}
    [unit] = json.loads([e for e in log.events + history if e.type == "job_completed"][0]["result_json"])["units"]
    assert [c["arguments"] for c in unit["calls"]] == [{"email": "ed@x.io"}, {"account": "A-ed", "cents": 200}]


class SlowBridge(FakeBridge):
    async def call(self, tool: Tool, arguments: dict[str, Any], key: str, agent: AgentSettings) -> Outcome:
        self.calls.append((tool.name, arguments, key))
        await asyncio.sleep(5)
        return Outcome()


def test_a_job_past_its_deadline_fails_deadline_whatever_it_was_doing() -> None:
    log = Log()
    job = JobRun(request(2), TOOLS, AgentSettings("acme"), True)
    state = asyncio.run(JobRunner(FakeModel(), SlowBridge(), log.emit).run(job, None, deadline_s=0.2))
    assert state.finished == "failed" and log.events[-1]["error_kind"] == "deadline"
    late, late_log = JobRun(request(2), TOOLS, AgentSettings("acme"), True), Log()
    bridge = FakeBridge()
    asyncio.run(JobRunner(FakeModel(), bridge, late_log.emit).run(late, None, deadline_s=-1))
    assert [e.type for e in late_log.events] == ["job_accepted", "job_failed"] and bridge.calls == []
    assert "deadline" in late_log.events[-1]["error"]


class HugeBridge(FakeBridge):
    async def call(self, tool: Tool, arguments: dict[str, Any], key: str, agent: AgentSettings) -> Outcome:
        self.calls.append((tool.name, arguments, key))
        return Outcome(result_json=json.dumps({"blob": "x" * 200_000}))


def test_answers_and_results_too_large_to_record_are_recorded_as_their_size() -> None:
    log = Log()
    limits = JobLimits(model_retry_pause_s=0.01, max_result_bytes=10_000, max_event_bytes=3_000)
    state = run(request(40), FakeModel(), HugeBridge(), log, limits=limits)
    answers = [json.loads(e["result_json"]) for e in log.events if e.type == "tool_call_completed"]
    assert len(answers) == 40 and all(a["truncated"] and a["bytes"] > 200_000 for a in answers)
    assert all(len(e["result_json"].encode()) <= 10_000 for e in log.events if e.type == "tool_call_completed")
    completed = log.events[-1]
    assert completed.type == "job_completed" and len(completed["result_json"].encode()) <= 3_000
    result = json.loads(completed["result_json"])
    assert result["completed"] == 40 and result["results_truncated"] and result["units_shown"] < 40
    assert state.finished == "completed"
