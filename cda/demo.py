"""The main job (`cda demo`): the seed's workflow for the demo company acme, through the public REST API of a
running stack (`cda up --example-api`), with progress at each long step.

1. onboard: the company and its key (the operator routes), its tools imported from its own API's OpenAPI
   document, the agents allowed to reach that API; its adapter trained from its example data (a progress bar
   with the loss) and waited for until inference serves it;
2. a batch of invoices, a complaint and an address change through `POST /company-automation/process`; per
   record the tool call the agent made, the example API's answer and the adapter version used;
3. the dashboards (the saved dashboard SQL, answered by the API for the key's company) in the terminal and
   as a self-contained `dashboard.html`.

A second run reuses what the first built — the key (kept in `<home>/keys/`), the tools and the served adapter
— so it only processes and shows; `--retrain` trains again.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from cda.dashboard import render_html, tables
from cda.demo_errors import DemoError
from cda.demo_records import DemoResult, Record, demo_batch, show_records
from cda.demo_training import follow_training
from cda.key_file import read_key, save_key
from cda.stack import api_url, operator_key
from core.health import answers_ok
from core.settings import Settings
from trainer.synthetic import DEMO_COMPANY, demo_call, demo_examples

FINAL = ("completed", "partially_failed", "failed")
UNIT_FINAL = ("completed", "skipped", "failed")


@dataclass(frozen=True)
class DemoOptions:
    examples: int = 300
    steps: int | None = 130  # None: the trainer's defaults fitted to the data (at least 200 steps)
    force: bool = False
    retrain: bool = False
    invoices: int = 6
    html: Path = Path("dashboard.html")
    stack_timeout_s: float = 300.0
    training_timeout_s: float = 3600.0
    job_timeout_s: float = 600.0


class Demo:
    """The workflow as a client of the API; every call names its step when it fails."""

    def __init__(self, settings: Settings, console: Console, options: DemoOptions = DemoOptions()) -> None:
        self.settings = settings
        self.console = console
        self.options = options
        self.company = DEMO_COMPANY
        self.base = api_url(settings)
        self.http = httpx.Client(base_url=self.base, timeout=90)
        self.key = ""

    # -- plumbing ---------------------------------------------------------------------------------
    def _call(self, step: str, method: str, path: str, expect: tuple[int, ...] = (200,), **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {"Authorization": f"Bearer {self.key}"} if self.key else {})
        try:
            response = self.http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise DemoError(f"{step}: {method} {self.base}{path} failed: {exc}; is the stack up? (cda status)") from None
        if response.status_code not in expect:
            raise DemoError(f"{step}: {method} {path} answered {response.status_code}: {response.text[:300]}")
        return response

    def _spin(self) -> Progress:
        return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=self.console,
                        transient=True)

    def _timed(self, result: DemoResult, name: str, step: Callable[[], None]) -> None:
        start = time.monotonic()
        step()
        result.seconds[name] = time.monotonic() - start

    # -- the steps --------------------------------------------------------------------------------
    def run(self) -> DemoResult:
        result = DemoResult(self.company, None, False)
        start = time.monotonic()
        try:
            self._timed(result, "stack", self.wait_for_stack)
            self._timed(result, "onboard", self.onboard)
            self._timed(result, "adapter", lambda: self.adapter(result))
            self._timed(result, "process", lambda: self.process(result))
            self._timed(result, "dashboards", lambda: self.dashboards(result))
        finally:
            self.http.close()
        result.seconds["total"] = time.monotonic() - start
        return result

    def wait_for_stack(self) -> None:
        """The API ready (broker, store, tables) and the inference gateway ready; nothing at all: say how to start it."""
        deadline = time.monotonic() + self.options.stack_timeout_s
        gateway = f"{self.settings.inference_url}/health/ready"
        with self._spin() as bar:
            bar.add_task(f"waiting for the API ({self.base}) and the inference gateway ({self.settings.inference_url})")
            refused_since: float | None = None
            while True:
                try:
                    api_ok = self.http.get("/health/ready", timeout=5).status_code == 200
                    refused_since = None
                except httpx.HTTPError:
                    api_ok = False
                    refused_since = refused_since or time.monotonic()
                    if time.monotonic() - refused_since > min(20.0, self.options.stack_timeout_s):
                        raise DemoError(f"nothing answers at {self.base}: start the stack first (cda up --example-api), "
                                        f"then run the demo again") from None
                gateway_ok = answers_ok(gateway, 5)
                if api_ok and gateway_ok:
                    break
                if time.monotonic() > deadline:
                    raise DemoError(f"the stack is not ready after {self.options.stack_timeout_s:.0f}s "
                                    f"(API ready: {api_ok}, gateway ready: {gateway_ok}); see cda status")
                time.sleep(1.0)
        self.console.print(f"stack ready: API {self.base}, inference {self.settings.inference_url}")

    def onboard(self) -> None:
        self._company_key()
        self._tools()
        self._agent_settings()

    def _company_key(self) -> None:
        kept = read_key(self.settings, self.company)
        if kept:
            self.key = kept
            if self._call("company key", "GET", "/company-automation/tools", expect=(200, 401)).status_code == 200:
                self.console.print(f"[1/3] company {self.company}: key kept from the first run (keys/{self.company}.key)")
                return
        op = operator_key(self.settings)
        if op is None:
            raise DemoError("company key: no operator key (CDA_API_OPERATOR_KEY, or the one `cda up` keeps in "
                            f"{self.settings.home / 'up' / 'operator.key'}); start the stack with cda up")
        self.key = ""
        operator = {"Authorization": f"Bearer {op}"}
        created = self._call("company", "POST", "/admin/companies", expect=(201, 409), headers=operator,
                             json={"company_id": self.company})
        if created.status_code == 409:
            created = self._call("company key", "POST", f"/admin/companies/{self.company}/rotate-key", expect=(201,),
                                 headers=operator)
        self.key = created.json()["api_key"]
        path = save_key(self.settings, self.company, self.key)
        verb = "created" if created.request.url.path.endswith("/companies") else "exists; its key rotated"
        self.console.print(f"[1/3] company {self.company} {verb} (POST {created.request.url.path}); "
                           f"key {created.json()['key_id']} kept in {path} (mode 0600)")
        deadline = time.monotonic() + 30  # the API follows company_keys; its own write is applied at once
        while self._call("company key", "GET", "/company-automation/tools", expect=(200, 401)).status_code != 200:
            if time.monotonic() > deadline:
                raise DemoError("company key: the API does not accept the new key after 30s")
            time.sleep(0.5)

    def _tools(self) -> None:
        example = self.settings.example_api_url.rstrip("/")
        try:
            document = httpx.get(f"{example}/openapi.json", timeout=10).json()
        except (httpx.HTTPError, ValueError) as exc:
            raise DemoError(f"tools: acme's example API at {example} does not answer ({exc}); "
                            f"start it: cda up --example-api (or cda example-api serve)") from None
        operations = {op["operationId"] for path in document.get("paths", {}).values() for op in path.values()}
        have = {t["name"]: t["url"] for t in self._call("tools", "GET", "/company-automation/tools").json()["tools"]}
        if operations <= set(have) and all(url.startswith(example) for url in have.values()):
            self.console.print(f"      tools kept: {', '.join(sorted(have))} (imported from {example}/openapi.json)")
            return
        registered = self._call("tools", "POST", "/company-automation/register-tools", expect=(202,),
                                json={"openapi": document}).json()["registered"]
        self.console.print(f"      tools imported from {example}/openapi.json: {', '.join(registered)}")

    def _agent_settings(self) -> None:
        """The example API listens on loopback, which the bridge refuses unless the company allows that host: the
        operator's step (`cda agents configure`), an `agent_configured` event, not a public route."""
        from topics.events import Event
        from topics.producer import EventProducer

        host = urlsplit(self.settings.example_api_url).netloc
        event = Event.new("agent_configured", self.company, use_adapter=True, step_limit=1000, concurrency=4,
                          allowed_hosts=[host], allowed_secrets=[])
        with EventProducer(self.settings) as producer:
            producer.produce(event)
        self.console.print(f"      agents of {self.company} may call {host} (cda agents configure --allow-host {host})")

    def adapter(self, result: DemoResult) -> None:
        served = self._call("adapter", "GET", "/company-automation/adapters").json()
        if served["active"] and not self.options.retrain:
            version = served["active"]
            metrics = next((v["metrics"] for v in served["versions"] if v["version"] == version), {})
            result.adapter_version = version
            self.console.print(f"[2/3] adapter {version} served already (exact match {metrics.get('exact_match', 0):.2f});"
                               f" not training again (--retrain does)")
            return
        result.trained = True
        examples = [{"task": e.task, "data": json.loads(e.payload_json), "tool": e.tool_name, "arguments": e.arguments}
                    for e in demo_examples(self.options.examples, seed=11)]
        body: dict[str, Any] = {"examples": examples, "force": self.options.force}
        if self.options.steps:
            body["steps"] = self.options.steps
        idem = (f"demo-train-{self.options.examples}-{self.options.steps or 'fitted'}-{int(self.options.force)}"
                if not self.options.retrain else f"demo-train-{uuid.uuid4().hex[:12]}")
        asked = self._call("train", "POST", "/company-automation/train-adapter", expect=(202,), json=body,
                           headers={"Authorization": f"Bearer {self.key}", "Idempotency-Key": idem}).json()
        self.console.print(f"[2/3] training {self.company}'s adapter on {len(examples)} examples of its data "
                           f"(request {asked['request_id']})")
        run = follow_training(self.console, lambda path: self._call("training", "GET", path).json(), asked["url"],
                                  self.options.training_timeout_s)
        if run["status"] != "ready":
            why = run.get("reason") or run.get("error") or run["status"]
            self.console.print(f"      [yellow]no new adapter: {run['status']} ({why}); the jobs use "
                               f"{served['active'] or 'the base model'}[/yellow]")
            result.adapter_version = served["active"]
            return
        version = run["version"]
        metrics, baseline = run["metrics"], run["baseline_metrics"]
        self.console.print(f"      gate passed: exact match {metrics.get('exact_match', 0):.2f} vs "
                           f"{baseline.get('exact_match', 0):.2f} before; version {version}")
        deadline = time.monotonic() + 300
        with self._spin() as bar:
            bar.add_task(f"waiting until inference serves {version}")
            while self._call("adapter", "GET", "/company-automation/adapters").json()["active"] != version:
                if time.monotonic() > deadline:
                    raise DemoError(f"adapter: {version} is not served after 300s; see cda status and the inference log")
                time.sleep(1.0)
        self.console.print(f"      adapter {version} served by vLLM (runtime LoRA) through the gateway")
        result.adapter_version = version

    def process(self, result: DemoResult) -> None:
        run = uuid.uuid4().hex[:8]
        jobs: dict[str, dict[str, Any]] = {}
        records: list[Record] = []
        for kind, task, data in demo_batch(self.options.invoices):
            headers = {"Authorization": f"Bearer {self.key}", "Idempotency-Key": f"demo-{run}-{kind.replace(' ', '-')}"}
            rows = data["invoices"] if "invoices" in data else [data]
            expected = [{"tool": tool, "arguments": args} for tool, args in map(demo_call, rows)]  # never in a prompt
            accepted = self._call("process", "POST", "/company-automation/process", expect=(202,),
                                  json={"task": task, "data": data, "expected": expected}, headers=headers).json()
            jobs[accepted["job_id"]] = accepted
            records += [Record(accepted["job_id"], kind, row, unit=i, expected=demo_call(row)) for i, row in enumerate(rows)]
        self.console.print(f"[3/3] processing {len(records)} records in {len(jobs)} jobs (POST /company-automation/process)")
        bodies: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + self.options.job_timeout_s
        with Progress(TextColumn("jobs"), BarColumn(), MofNCompleteColumn(), TextColumn("records done"), TimeElapsedColumn(),
                      console=self.console, transient=True) as bar:
            task = bar.add_task("units", total=len(records))
            while len([b for b in bodies.values() if b["status"] in FINAL]) < len(jobs):
                for job_id, accepted in jobs.items():
                    if bodies.get(job_id, {}).get("status") not in FINAL:
                        bodies[job_id] = self._call("job", "GET", urlsplit(accepted["url"]).path).json()
                bar.update(task, completed=sum(u["status"] in UNIT_FINAL for b in bodies.values() for u in b.get("units", [])))
                if time.monotonic() > deadline:
                    raise DemoError(f"process: jobs not ended after {self.options.job_timeout_s:.0f}s: "
                                    f"{ {j: b['status'] for j, b in bodies.items()} }")
                time.sleep(0.5)
        for record in records:
            body = bodies[record.job]
            unit = next((u for u in body["units"] if u["unit"] == record.unit), None)
            record.adapter = body.get("adapter_version") or "base"
            record.status = unit["status"] if unit else body["status"]
            if unit:
                record.tool, record.arguments = unit.get("tool") or "", unit.get("arguments")
                record.answer = (f"{unit['status_code']} {json.dumps(unit['result'])}" if unit.get("status_code")
                                 and unit["status"] == "completed" else
                                 f"{unit.get('status_code') or ''} {unit.get('error_kind')}: {unit.get('error', '')[:80]}".strip())
            else:
                record.answer = f"{body.get('error_kind')}: {body.get('error', '')[:80]}"
        result.records = records
        show_records(self.console, records)
        right_jobs = sum(1 for b in bodies.values() if b.get("right") is True)
        self.console.print(f"      jobs right as the API records them: {right_jobs} of {len(bodies)} (a job is right only "
                           f"when every record's call is)")

    def dashboards(self, result: DemoResult) -> None:
        """The panels once the views hold every finished job (the projections fold right behind the jobs)."""
        finished = sum(self._call("jobs", "GET", "/company-automation/jobs", params={"status": s, "limit": 1}).json()["total"]
                       for s in FINAL)
        deadline = time.monotonic() + 60
        while True:
            body = self._call("dashboards", "GET", "/company-automation/dashboards").json()
            panel = next((p for p in body["panels"] if p["name"] == "job_latency_percentiles"), None)
            folded = sum(r[panel["columns"].index("finished_jobs")] for r in panel["rows"]) if panel and panel["rows"] else 0
            if folded >= finished or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        for table in tables(body):
            self.console.print(table)
        self.options.html.write_text(render_html(body))
        result.dashboards, result.html = body, self.options.html
        self.console.print(f"dashboards written to {self.options.html.resolve()} (self-contained; `cda dashboard` serves "
                           f"them live)")
