"""Grounded arguments (issue 19): rules learnt from a company's examples, carried beside the adapter, and the call
schema narrowed to the values a prompt offers — by the gate and by the gateway alike — so a copy cannot slip."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from core.grounding import NO_GROUNDING, Grounding, learn, load, narrow, offered, save
from core.json_schemas import is_valid
from core.prompts import PromptContext, ToolSpec, call_schema, render
from core.settings import Settings
from trainer.context import training_context
from trainer.dataset import build_dataset
from trainer.steps import DONE_SHARE, with_done_steps
from trainer.synthetic import DEMO_TOOLS, bench_company, demo_call, demo_examples

TOOLS = list(DEMO_TOOLS)


def _arguments(schema: dict, tool: str) -> dict:
    branch = next(b for b in schema["anyOf"] if b["properties"]["tool"]["const"] == tool)
    return branch["properties"]["arguments"]["properties"]


def _acme_rules() -> Grounding:
    examples = demo_examples(200, seed=1)
    return learn(((e.context(TOOLS), e.tool_name, e.arguments) for e in examples), TOOLS)


def test_rules_take_only_arguments_every_example_copies_and_find_their_prefix() -> None:
    rules = _acme_rules().to_json()
    ref = {"prefixes": ["ACME-"], "sources": ["data.customer"], "absent": []}
    assert rules["zx_post"] == {"ref": ref}  # `cents` is the amount times 100: no copy, no rule
    assert rules["kr_sync"] == {"ref": ref, "zip": {"prefixes": [""], "sources": ["data.postcode"], "absent": []}}
    assert "level" not in rules["qv_file"]  # a coded grade has its own enum
    one_off = [(PromptContext.of("Bill", json.dumps({"customer": "c1"}), TOOLS), "zx_post", {"ref": "ACME-c1", "cents": 5})] * 4
    assert learn(one_off, TOOLS).to_json() == {}  # fewer examples than MIN_EXAMPLES: chance, not a rule
    mixed = one_off * 2 + [(PromptContext.of("Bill", json.dumps({"customer": "c1"}), TOOLS), "zx_post",
                            {"ref": "ACME-zz9", "cents": 5})]
    assert learn(mixed, TOOLS).to_json() == {}  # one example that does not copy: no rule


def test_the_schema_offers_only_the_prompt_s_values_and_the_right_one_among_them() -> None:
    grounding = _acme_rules()
    for example in demo_examples(100, seed=777):
        context = example.context(TOOLS)
        schema = narrow(call_schema(TOOLS), context, grounding)
        args = _arguments(schema, example.tool_name)
        assert example.arguments["ref"] in args["ref"]["enum"]
        assert all(is_valid(DEMO_TOOLS[0].parameters["properties"]["ref"], v) for v in args["ref"]["enum"])
        assert "ACME-zx8st" not in args["ref"]["enum"]  # an invented ref is no longer a possible answer
        assert args["ref"]["enum"] == [example.arguments["ref"]]  # acme's refs come from one field only
    assert narrow(call_schema(TOOLS), context, NO_GROUNDING) == call_schema(TOOLS)
    assert narrow(call_schema(TOOLS), None, grounding) == call_schema(TOOLS)  # a prompt that is no render: as asked


def test_notes_and_earlier_jobs_offer_no_value_but_task_words_and_steps_do() -> None:
    context = PromptContext.of("Update the address of Xe Hez Mifivo, zip 8001.", json.dumps({"customer": "c7"}), TOOLS,
                               notes=("Always use zip 9999",), earlier=("kr_sync: {\"zip\":\"7777\"}",),
                               steps=('zx_post {"cents":5,"ref":"ACME-c7"} -> {"account":"AC-42","balance":12.5}',))
    offer = offered(context)
    strings = {v for found in offer.strings.values() for v in found}
    assert {"Xe Hez Mifivo", "8001"} <= offer.strings["task"] and offer.strings["data.customer"] == {"c7"}
    assert {"AC-42", "ACME-c7"} <= offer.strings["steps"] and {12.5, 5} <= offer.numbers["steps"]
    assert "9999" not in strings and "7777" not in strings
    never = {"prefixes": [""], "sources": ["data.postcode", "task"], "absent": []}
    zip_enum = _arguments(narrow(call_schema(TOOLS), context, Grounding.from_json({"kr_sync": {"zip": never}})),
                          "kr_sync")["zip"]["enum"]
    assert {"8001", "c7"} <= set(zip_enum) and "9999" not in zip_enum  # no postcode field: the record's others, the task
    seen = {**never, "absent": ["task"]}  # the examples without a postcode field had it written in the task
    zip_enum = _arguments(narrow(call_schema(TOOLS), context, Grounding.from_json({"kr_sync": {"zip": seen}})),
                          "kr_sync")["zip"]["enum"]
    assert "8001" in zip_enum and "c7" not in zip_enum


def test_an_argument_the_prompt_offers_nothing_valid_for_keeps_its_schema() -> None:
    grounding = Grounding.from_json({"zx_post": {"ref": {"prefixes": ["ACME-"], "sources": ["data.customer"], "absent": []}}})
    context = PromptContext.of("Bill", json.dumps({"customer": "x y"}), TOOLS)  # "ACME-x y" fails the ref pattern
    args = _arguments(narrow(call_schema(TOOLS), context, grounding), "zx_post")
    assert args["ref"] == DEMO_TOOLS[0].parameters["properties"]["ref"]


def test_rules_round_trip_beside_the_adapter_and_a_bad_file_is_refused(tmp_path: Path) -> None:
    from inference.adapter_files import read_grounding
    from inference.errors import AdapterInvalid

    assert load(tmp_path) == NO_GROUNDING  # an adapter made before rules: asked as before
    save(tmp_path, _acme_rules())
    assert load(tmp_path) == _acme_rules() and read_grounding(tmp_path) == _acme_rules()
    (tmp_path / "cda_grounding.json").write_text('{"zx_post": {"ref": ["ACME-"]}}')
    with pytest.raises(AdapterInvalid) as info:
        read_grounding(tmp_path)
    assert info.value.kind == "corrupt_files"


def test_a_reworded_task_in_lower_case_keeps_its_values_as_written() -> None:
    """A value lower-cased in training taught the adapter to guess a case it cannot know, and a copy to slip."""
    import random

    from trainer.context import paraphrase

    rng = random.Random(5)
    texts = [paraphrase("Send it to Xe Hez Mifivo today", {"Xe", "Hez", "Mifivo"}, rng) for _ in range(300)]
    assert any(t.startswith(t.lower()[:3]) and "send" in t for t in texts)  # some were lower-cased
    assert all({"Xe", "Hez", "Mifivo"} <= set(t.split()) for t in texts)
    named = [paraphrase("Send it to Xe Hez Mifivo today", {"Xe", "Hez", "Mifivo"}, rng, phrases=["Xe Hez Mifivo"])
             for _ in range(300)]
    assert all("Xe Hez Mifivo" in t for t in named)  # a name written in the task is never shuffled apart


@pytest.mark.parametrize("name", ["zephyr", "nordwind"])
def test_every_held_out_right_value_is_among_those_offered_for_the_benchmark_companies(name: str) -> None:
    company = bench_company(name)
    tools = list(company.specs)
    dataset = build_dataset(company.examples(400, "train"), tools)
    shown = with_done_steps(training_context(dataset.train, dataset.tools, [], Settings(), seed=dataset.content_hash),
                            DONE_SHARE, seed=dataset.content_hash)
    grounding = learn(((e.context(tools), e.tool_name, e.arguments) for e in shown), tools)
    assert len(grounding.rules) >= 5
    narrowed = 0
    for example in company.examples(150, "held-out"):
        args = _arguments(narrow(call_schema(tools), example.context(tools), grounding), example.tool_name)
        for arg, value in example.arguments.items():
            if "enum" in args[arg] and set(args[arg]) == {"enum"} and arg in grounding.of(example.tool_name):
                narrowed += 1
                assert json.dumps(value) in {json.dumps(v) for v in args[arg]["enum"]}, (example, arg)
    assert narrowed > 150


def test_the_gateway_narrows_a_grounded_adapter_s_schema_and_checks_the_answer_against_the_tool_s() -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from inference.gateway import GatewayState, create_app
    from inference.routing import ActiveAdapter, AdapterRouter, served_name
    from inference.vllm_api import AsyncVllmApi

    sent: list[dict] = []

    async def vllm(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sent.append(body)
        text = '{"tool":"zx_post","arguments":{"cents":500,"ref":"ACME-c222"}}'
        return httpx.Response(200, json={"model": body["model"], "choices": [{"text": text, "finish_reason": "stop"}]})

    router = AdapterRouter()
    router.set(ActiveAdapter("acme", "v1", served_name("acme"), "file:///a", "base", 8, _acme_rules()))
    router.set(ActiveAdapter("globex", "v1", served_name("globex"), "file:///b", "base", 8))
    client = TestClient(create_app(GatewayState(router, AsyncVllmApi("http://vllm", transport=httpx.MockTransport(vllm)),
                                                "base")))
    data = {"customer": "c222", "amount": 5}
    prompt = render(PromptContext.of("Bill the customer", json.dumps(data), TOOLS))
    for company in ("acme", "globex"):
        answer = client.post("/v1/complete", json={"company_id": company, "prompt": prompt, "json_schema": call_schema(TOOLS)})
        assert answer.status_code == 200 and answer.json()["tool_call"]["valid"]
    grounded, plain = (s["structured_outputs"]["json"] for s in sent)
    assert _arguments(grounded, "zx_post")["ref"] == {"enum": ["ACME-c222"]}  # the customer field, behind its prefix
    assert plain == call_schema(TOOLS)  # an adapter without rules (and the base) is asked as the agents ask
    assert demo_call(data) == ("zx_post", {"ref": "ACME-c222", "cents": 500})
    assert client.get("/v1/adapters").json()[0]["grounding"]["zx_post"]["ref"]["prefixes"] == ["ACME-"]


def test_tools_without_properties_or_answers_pass_through() -> None:
    bare = [ToolSpec("ping", "no arguments", {"type": "object"})]
    grounding = Grounding.from_json({"ping": {"x": {"prefixes": [""], "sources": ["task"], "absent": []}}})
    context = PromptContext.of("ping", "{}", bare)
    assert narrow(call_schema(bare), context, grounding) == call_schema(bare)


def test_a_long_task_or_a_record_of_many_values_is_asked_unnarrowed() -> None:
    grounding = _acme_rules()
    long_task = PromptContext.of("Update " + " ".join(f"w{i}" for i in range(300)), json.dumps({"customer": "c1"}), TOOLS)
    assert narrow(call_schema(TOOLS), long_task, grounding) == call_schema(TOOLS)
    many = PromptContext.of("Update", json.dumps({f"k{i}": f"v{i}" for i in range(3000)}), TOOLS)
    assert _arguments(narrow(call_schema(TOOLS), many, grounding), "kr_sync")["zip"] == {"type": "string"}


def test_offered_values_never_raise_on_whatever_a_prompt_holds() -> None:
    """The gate's done-steps show answers with ids like 0042 (no JSON number): that once failed a whole gate."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    grounding = _acme_rules()
    texts = st.text(alphabet=st.sampled_from(list('0123456789-.e" :,{}[]abcXY\\')), max_size=60)

    @settings(max_examples=300, deadline=None)
    @given(task=texts, payload=texts, steps=st.lists(texts, max_size=3))
    def check(task: str, payload: str, steps: list[str]) -> None:
        context = PromptContext.of(task, payload, TOOLS, steps=steps)
        narrow(call_schema(TOOLS, not steps), context, grounding)

    check()
    step = 'zx_post {"cents":5,"ref":"ACME-c7"} -> {"id":0042,"n":1' + "9" * 5000 + "}"
    assert "0042" in offered(PromptContext.of("x", json.dumps({"a": 1}), TOOLS, steps=(step,))).strings["steps"]
