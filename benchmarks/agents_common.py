"""What the agent benchmarks share: acme onboarded on scratch topics against the example API, a model that
answers with acme's convention after a fixed latency (or the real gateway), and batches of invoice jobs."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.prompts import DONE
from core.settings import Settings
from examples.company_api import run_in_thread
from streams.agent_loop import Decision, Model
from streams.agent_settings import AgentSettings
from streams.ids import job_id_for
from streams.openapi import tools_from_openapi
from streams.openapi_document import load_document
from streams.tools import Tool
from topics.events import Event
from topics.producer import EventProducer
from topics.reads import read_to_end

TASK = "Bill the customer for the order"


class SimulatedModel:
    """Answers like acme's adapter after `latency_ms` (its call, then `done` once the call's answer is shown):
    the same model for the agents and the direct loop."""

    def __init__(self, latency_ms: float) -> None:
        self.latency_s = latency_ms / 1000

    async def decide(self, company_id: str, prompt: str, schema: dict[str, Any], use_adapter: bool) -> Decision:
        await asyncio.sleep(self.latency_s)
        if "\nSteps:\n" in prompt:  # its call was made: the unit is done, as a trained adapter answers
            return Decision(True, DONE, {}, json.dumps({"tool": DONE, "arguments": {}}), "acme@lora", "bench")
        data = json.loads(prompt.split("Data: ", 1)[1].split("\n", 1)[0])
        arguments = {"ref": f"ACME-{data['customer']}", "cents": int(data["amount"]) * 100}
        return Decision(True, "zx_post", arguments, json.dumps(arguments), "acme@lora", "bench")


def pick_model(kind: str, settings: Settings, latency_ms: float) -> Model:
    if kind == "simulated":
        return SimulatedModel(latency_ms)
    from inference.client import InferenceClient
    from streams.gateway_model import GatewayModel

    return GatewayModel(InferenceClient(settings))


@contextmanager
def onboarded_acme(settings: Settings, concurrency: int) -> Iterator[tuple[str, dict[str, Tool], AgentSettings]]:
    """The example API running, acme's tools imported from it and its agent settings recorded."""
    folder = Path(tempfile.mkdtemp(prefix="cda-bench-api-"))
    with run_in_thread(folder / "acme.sqlite3") as url:
        document, _ = load_document(f"{url}/openapi.json")
        tools = tools_from_openapi(document, "acme")
        agent = AgentSettings("acme", concurrency=concurrency, allowed_hosts=frozenset({url.removeprefix("http://")}))
        with EventProducer(settings) as producer:
            for tool in tools:
                producer.produce(Event.new("tool_registered", "acme", **tool.to_fields()))
            producer.produce(Event.new("agent_configured", "acme", **agent.to_fields()))
        yield url, {t.name: t for t in tools}, agent


def invoice_jobs(count: int, units: int, tag: str, seed: int = 0) -> list[Event]:
    rng = random.Random(seed)
    out = []
    for j in range(count):
        records = [{"customer": f"c{rng.randint(100, 999)}", "amount": rng.randint(1, 99)} for _ in range(units)]
        request_id = f"{tag}-{j}"
        out.append(Event.new("data_process_requested", "acme", request_id=request_id,
                             job_id=job_id_for("acme", request_id), task=TASK,
                             payload_json=json.dumps({"invoices": records})))
    return out


def company_tools(document: dict[str, Any], company: str, tool_ms: int = 0, more: int = 0) -> list[Tool]:
    """The example API's tools for `company`, answering `tool_ms` late (`X-Slow-Ms`), plus `more` of them again
    under other names (a company with more tools)."""
    tools = tools_from_openapi(document, company)
    tools += [dataclasses.replace(t, name=f"{t.name}_{i}") for i, t in enumerate(tools * 2)][:more]
    return [dataclasses.replace(t, headers={"X-Slow-Ms": str(tool_ms)}) if tool_ms else t for t in tools]


def onboard_companies(settings: Settings, url: str, tools: dict[str, list[Tool]]) -> None:
    """Register each company's tools and agent settings (allowed to reach the example API at `url`)."""
    host = url.removeprefix("http://")
    with EventProducer(settings) as producer:
        for company, listed in tools.items():
            for tool in listed:
                producer.produce(Event.new("tool_registered", company, **tool.to_fields()))
            producer.produce(Event.new("agent_configured", company,
                                       **AgentSettings(company, allowed_hosts=frozenset({host})).to_fields()))


def job_ends(settings: Settings, reader: str) -> dict[str, list[Event]]:
    """Every `job_completed` / `job_failed` on the log so far, by job id (a job ended twice has two)."""
    out: dict[str, list[Event]] = {}
    for received in read_to_end(settings, "company_automation_jobs", reader):
        if received.event.type in ("job_completed", "job_failed"):
            out.setdefault(str(received.event["job_id"]), []).append(received.event)
    return out
