"""A unit's later decisions in training data: `done` after a call, labelled units of several calls unrolled into
one example per decision (one side of the split), records no tool fits, and Kestrel's labels agreeing with its
lookups."""

from __future__ import annotations

import json

import pytest

from api.schemas.training import TrainingExample
from core.prompts import DECLINE, DONE, call_schema, render, render_step
from trainer.dataset import build_dataset, in_eval
from trainer.examples import Example
from trainer.sources import labelled_example
from trainer.steps import done_after, plausible_answer, with_done_steps
from trainer.synthetic import DEMO_TOOLS, demo_examples
from trainer.synthetic_steps import STEP_TOOLS, lookup_answer, step_units


def test_done_follows_a_share_of_calls_and_its_prompt_shows_the_call_and_an_answer() -> None:
    examples = demo_examples(200, seed=5)
    shown = with_done_steps(examples, 0.3, seed="s")
    assert shown == with_done_steps(examples, 0.3, seed="s")  # deterministic
    done = [e for e in shown if e.tool_name == DONE]
    assert 40 <= len(done) <= 80 and all(e.arguments == {} and len(e.steps) == 1 for e in done)
    first = next(i for i, e in enumerate(shown) if e.tool_name == DONE)
    call = shown[first - 1]
    assert done[0].group == call.content_hash  # the call and its done fall on one side of the split
    prompt = render(done[0].context(DEMO_TOOLS))
    assert f"\nSteps:\n- {call.tool_name} " in prompt and prompt.endswith("\nCall: ")


def test_an_answer_in_a_prompt_is_capped_and_secret_fields_are_blanked() -> None:
    line = render_step("find", {"email": "a@b"}, {"token": "s3cret", "nested": {"Password": "x"}, "z_rows": ["r" * 500]})
    assert "s3cret" not in line and '"token":"[redacted]"' in line and '"Password":"[redacted]"' in line
    assert line.endswith("...") and len(line) < 360


BILL = {"task": "Bill the customer", "data": {"email": "a@x.io", "amount": 5}, "calls": [
    {"tool": "find_account", "arguments": {"email": "a@x.io"}, "result": {"account_id": "AC-1"}},
    {"tool": "bill_account", "arguments": {"account_id": "AC-1", "cents": 500}, "result": {"id": 3}}]}


def test_a_labelled_unit_unrolls_into_one_decision_per_step_then_done_on_one_side_of_the_split() -> None:
    steps = [labelled_example(r) for r in TrainingExample.model_validate(BILL).records()]
    assert [e.tool_name for e in steps] == ["find_account", "bill_account", DONE]
    assert [len(e.steps) for e in steps] == [0, 1, 2] and len({e.group for e in steps}) == 1
    assert '-> {"account_id":"AC-1"}' in steps[1].steps[0]
    assert len({in_eval(e) for e in steps}) == 1
    assert with_done_steps(steps, 1.0) == steps  # a labelled unit says itself what follows each call


def test_the_api_s_labelled_calls_reach_the_trainer_as_the_same_decisions() -> None:
    got = [labelled_example(r) for r in TrainingExample.model_validate(BILL).records()]
    calls = [("find_account", {"email": "a@x.io"}, {"account_id": "AC-1"}),
             ("bill_account", {"account_id": "AC-1", "cents": 500}, {"id": 3})]
    want = [(tool, arguments, tuple(render_step(*c) for c in calls[:i])) for i, (tool, arguments, _) in enumerate(calls)]
    want.append((DONE, {}, tuple(render_step(*c) for c in calls)))
    assert [(e.tool_name, e.arguments, e.steps) for e in got] == want
    assert len({e.group for e in got}) == 1 and got[0].group
    assert all(e.task == "Bill the customer" and json.loads(e.payload_json) == BILL["data"] for e in got)


@pytest.mark.parametrize(("body", "why"), [
    ({"tool": "none", "arguments": {"x": 1}}, "takes no arguments"),
    ({"tool": "done", "arguments": {}}, "are the model's answers"),
    ({"tool": "a", "arguments": {}, "calls": [{"tool": "a", "arguments": {}, "result": 1}]}, "exactly one"),
    ({"tool": "a"}, "arguments: required"),
    ({"calls": [{"tool": "a", "arguments": {}}]}, "result"),
])
def test_a_labelled_record_in_a_wrong_form_is_refused_naming_why(body: dict, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        TrainingExample.model_validate({"task": "t", "data": {}, **body})


def test_answers_out_of_place_are_rejected_and_a_decline_is_a_valid_label() -> None:
    ok = [Example(f"Translate note {i}", json.dumps({"note": f"n{i}"}), DECLINE, {}) for i in range(20)]
    ok += demo_examples(20, seed=9)
    bad = [Example("t", "{}", DONE, {}), Example("t", "{}", DECLINE, {}, steps=("zx_post {} -> {}",))]
    dataset = build_dataset(ok + bad, list(DEMO_TOOLS), min_train=2, min_eval=1)
    assert dataset.rejected.get("answer_out_of_place") == 2
    assert any(e.tool_name == DECLINE for e in dataset.train + dataset.eval)


def test_the_first_step_may_decline_and_later_ones_may_end() -> None:
    first = [o["properties"]["tool"]["const"] for o in call_schema(list(STEP_TOOLS))["anyOf"]]
    later = [o["properties"]["tool"]["const"] for o in call_schema(list(STEP_TOOLS), first_step=False)["anyOf"]]
    assert first[-1] == DECLINE and DONE not in first and later[-1] == DONE and DECLINE not in later


def test_kestrel_labels_use_what_its_lookups_answer() -> None:
    units = step_units(200, "t", declines=0.2)
    assert units == step_units(200, "t", declines=0.2)
    declined = [u for u in units if u.declined]
    assert 20 <= len(declined) <= 60 and all(u.expected() == {"tool": DECLINE} for u in declined)
    for unit in (u for u in units if len(u.calls) == 2):
        (lookup, arguments, answer), (_, action_arguments, _) = unit.calls
        assert answer == lookup_answer(lookup, arguments)
        assert set(answer.values()) & set(action_arguments.values())  # the action carries what the lookup answered
    example = done_after(Example("t", "{}", "open_case", {"ref": "K-1", "level": "P1"}), plausible_answer(
        __import__("random").Random(1), {"ref": "K-1"}))
    assert example.tool_name == DONE and example.steps[0].startswith("open_case ")
