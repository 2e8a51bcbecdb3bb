"""The product end to end on real components: the example API's OpenAPI imported as acme's tools, acme's
adapter trained by the trainer and served by vLLM through the gateway, the agents as their own process
(`cda agents run`), a batch of invoices through `cda process --wait`, the calls at the example API, and
the jobs and tool calls in the ClickHouse views. Then the agents killed with SIGKILL at 20 random points
under a steady stream of jobs: every job completes, with 0 lost and 0 duplicated effects."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from core.settings import Settings, settings_env
from core.workers import WorkerThread
from examples.company_api import run_in_thread
from projections.catalog import JOBS, TOOL_CALLS
from projections.migrate import migrate
from projections.runner import ProjectionRunner
from projections.store import ProjectionStore
from streams.ids import job_id_for
from streams.job_reader import company_jobs
from tests.helpers import eventually, free_port
from topics.admin import apply_catalog
from topics.events import Event
from topics.producer import EventProducer
from trainer.synthetic import DEMO_COMPANY, demo_examples

pytestmark = [pytest.mark.kafka, pytest.mark.vllm, pytest.mark.timeout(1800)]  # training acme takes minutes
# acme's 600 examples at 100 steps: exact match 0.99 on the 109 held-out examples the gate evaluates, 5 of 5
# invoices right (1,200 examples at 150 steps: 1.00); more steps or examples bought only minutes
ADAPTER_STEPS = int(os.environ.get("CDA_TEST_AGENT_ADAPTER_STEPS", "100"))


@dataclass
class Stack:
    settings: Settings
    env: dict[str, str]
    api_url: str
    store: ProjectionStore


def _env(settings: Settings) -> dict[str, str]:
    return {**settings_env(settings), "COLUMNS": "200"}


def cda(stack: Stack, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cda.cli.main", *args], env=stack.env, capture_output=True, text=True,
                          timeout=timeout)


def _train_acme(settings: Settings) -> None:
    """acme's adapter through the path a user takes: a request, the trainer worker, the gate, the lifecycle."""
    from trainer.worker import TrainerWorker

    examples = [{"task": e.task, "data": json.loads(e.payload_json), "tool": e.tool_name, "arguments": e.arguments}
                for e in demo_examples(600, seed=11)]  # the gate evaluates its ~110 held out, twice
    path = settings.home / "acme-examples.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in examples) + "\n")
    worker = TrainerWorker(settings)
    with_thread = WorkerThread("trainer", worker.run, threading.Event()).start()
    try:
        done = subprocess.run([sys.executable, "-m", "cda.cli.main", "train", "--company", DEMO_COMPANY, "--examples",
                               str(path), "--steps", str(ADAPTER_STEPS), "--force"], env=_env(settings),
                              capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, done.stdout + done.stderr
        print(f"\nE2E-TRAIN steps={ADAPTER_STEPS} " + " | ".join(done.stdout.strip().splitlines()[-2:]))
    finally:
        with_thread.stop.set()
        with_thread.join(60)


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, clickhouse_dsn: str, tiny_model: str, vllm_url: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("e2e-home")
    settings = Settings(home=home, kafka_bootstrap=kafka_bootstrap, topic_prefix=f"e2e{uuid.uuid4().hex[:6]}.",
                        clickhouse_url=clickhouse_dsn, clickhouse_database=f"e2e_{uuid.uuid4().hex[:8]}",
                        base_model=tiny_model, vllm_url=vllm_url, inference_url=f"http://127.0.0.1:{free_port()}")
    apply_catalog(settings)
    store = ProjectionStore.from_settings(settings)
    migrate(store)
    with run_in_thread(home / "acme.sqlite3") as api_url:
        stack = Stack(settings, _env(settings), api_url, store)
        gateway = subprocess.Popen([sys.executable, "-m", "cda.cli.main", "inference", "serve", "--external"],
                                   env=stack.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            eventually(lambda: _ready(settings.inference_url), 180, "the inference gateway ready")
            imported = cda(stack, "tools", "import", "--company", DEMO_COMPANY, "--openapi", f"{api_url}/openapi.json")
            assert imported.returncode == 0, imported.stderr
            configured = cda(stack, "agents", "configure", "--company", DEMO_COMPANY, "--concurrency", "4",
                             "--allow-host", api_url.removeprefix("http://"))
            assert configured.returncode == 0, configured.stderr
            _train_acme(settings)
            eventually(lambda: _adapters(settings.inference_url).get(DEMO_COMPANY) is not None, 120,
                       "acme's adapter served by the gateway")
            yield stack
        finally:
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(60)
            store.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
            store.close()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _adapters(url: str) -> dict[str, object]:
    return {a["company_id"]: a for a in httpx.get(f"{url}/v1/adapters", timeout=5).json()}


class Agents:
    """`cda agents run` as its own process, started and killed at will."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.process: subprocess.Popen[bytes] | None = None
        self.log = stack.settings.home / "agents.log"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "cda.cli.main", "agents", "run"], env=self.stack.env,
                                            stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()


def invoices(n: int, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    return [{"customer": f"c{rng.randint(100, 999)}", "amount": rng.randint(1, 99)} for _ in range(n)]


def effects(stack: Stack) -> list[dict[str, object]]:
    return httpx.get(f"{stack.api_url}/effects", params={"limit": 100_000}).json()


def test_invoices_become_calls_at_the_company_api_and_the_job_shows_in_the_views(stack: Stack) -> None:
    batch = invoices(5, seed=3)
    data = stack.settings.home / "invoices.json"
    data.write_text(json.dumps({"task": "process_invoices", "invoices": batch}))
    before = len(effects(stack))
    agents = Agents(stack)
    agents.start()
    try:
        done = cda(stack, "process", "--company", DEMO_COMPANY, "--task", "Bill the customer for the order", "--data",
                   str(data), "--request-id", "e2e-batch-1", "--wait", "--timeout", "300")
    finally:
        agents.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "completed: 5 of 5 unit(s) completed" in done.stdout
    got = effects(stack)[before:]
    assert len(got) == 5 and {e["tool"] for e in got} == {"zx_post"}
    right = {(f"ACME-{i['customer']}", int(i["amount"]) * 100) for i in batch}  # type: ignore[call-overload]
    exact = sum((e["arguments"]["ref"], e["arguments"]["cents"]) in right for e in got)  # type: ignore[index]
    print(f"E2E exact_arguments={exact}/5")
    assert exact >= 4
    shown = cda(stack, "jobs", "show", job_id_for(DEMO_COMPANY, "e2e-batch-1"))
    assert shown.returncode == 0 and "tool_call_completed" in shown.stdout and "job_completed" in shown.stdout
    stop = threading.Event()
    runners = [WorkerThread(p.name, ProjectionRunner(stack.settings, stack.store, p, flush_interval_s=0.1).run, stop).start()
               for p in (JOBS, TOOL_CALLS)]
    try:
        job = job_id_for(DEMO_COMPANY, "e2e-batch-1")

        def in_views() -> bool:
            rows = stack.store.query_dicts("SELECT status, tool_calls FROM company_automation_jobs WHERE job_id = {j:String}",
                                           {"j": job})
            calls = stack.store.query("SELECT count() FROM tool_calls WHERE job_id = {j:String}", {"j": job})[0][0]
            return bool(rows) and rows[0]["status"] == "completed" and rows[0]["tool_calls"] == 5 and calls == 5
        eventually(in_views, 60, "the job and its 5 tool calls in the ClickHouse views")
    finally:
        stop.set()
        for r in runners:
            r.join(30)


def test_agents_killed_at_20_random_points_lose_and_double_nothing(stack: Stack) -> None:
    rng = random.Random(20)
    before = len(effects(stack))
    sent: list[Event] = []
    stop = threading.Event()

    def produce_steadily() -> None:
        with EventProducer(stack.settings) as producer:
            while not stop.is_set():
                n = len(sent)
                records = invoices(rng.randint(1, 2), seed=1000 + n)
                event = Event.new("data_process_requested", DEMO_COMPANY, request_id=f"crash-{n}",
                                  job_id=job_id_for(DEMO_COMPANY, f"crash-{n}"), task="Bill the customer for the order",
                                  payload_json=json.dumps({"invoices": records}))
                producer.produce(event)
                producer.flush()
                sent.append(event)
                stop.wait(2.0)  # ~40 jobs over the kills: always some in flight, a drain of minutes not ten

    # the API answers its next calls slowly (the effect is made first), so that a kill may land between an
    # acknowledged tool_call_requested and the answer (printed as replayed_calls; the loop's unit tests cover
    # that window deterministically)
    httpx.post(f"{stack.api_url}/control/faults", json={"tool": "*", "slow_next": 60, "slow_ms": 1500}).raise_for_status()
    replayed_before = httpx.get(f"{stack.api_url}/effects/count").json()["replayed"]
    feeder = threading.Thread(target=produce_steadily, daemon=True)
    feeder.start()
    agents = Agents(stack)
    try:
        for _ in range(20):
            agents.start()
            time.sleep(rng.uniform(1.0, 6.0))
            agents.kill()
        stop.set()
        feeder.join(30)
        agents.start()
        wanted = {str(e["job_id"]) for e in sent}

        def all_ended() -> bool:
            jobs = {j.job_id: j for j in company_jobs(stack.settings, DEMO_COMPANY)}
            return all(j in jobs and jobs[j].state.finished for j in wanted)
        eventually(all_ended, 600, f"all {len(wanted)} jobs ending after the kills", interval_s=2.0)
    finally:
        stop.set()
        agents.stop()
    jobs = {j.job_id: j for j in company_jobs(stack.settings, DEMO_COMPANY) if j.job_id in wanted}
    units = sum(len(json.loads(e["payload_json"])["invoices"]) for e in sent)
    assert all(j.state.finished == "completed" for j in jobs.values())  # every accepted job completed
    assert sum(len(j.state.units) for j in jobs.values()) == units and all(
        u.done for j in jobs.values() for u in j.state.units.values())  # 0 units lost
    completed = sum(1 for j in jobs.values() for u in j.state.units.values() if u.outcome == "completed")
    new = effects(stack)[before:]
    keys = [e["idempotency_key"] for e in new]
    assert len(keys) == len(set(keys)) == completed  # 0 duplicated effects, 0 lost
    replayed = httpx.get(f"{stack.api_url}/effects/count").json()["replayed"] - replayed_before
    print(f"CRASH kills=20 jobs={len(jobs)} units={units} completed_calls={completed} effects={len(new)} "
          f"replayed_calls={replayed}")
