"""`cda up --kafka-brokers 3`: every part on a local 3-node Kafka cluster. One node is SIGKILLed while jobs stream
through `POST /process` and two training requests are in flight: every job and every training request ends exactly
once on the log (0 lost, 0 doubled), the supervisor restarts the node by itself, and jobs sent after the loss end
too (the agents, the API, its projections and the trainer resume without help)."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from cda.demo import FINAL, Demo
from cda.demo_records import demo_batch
from cda.stack import api_url
from cda.supervisor import StatusFile
from core.settings import Settings, settings_env
from tests.helpers import eventually, free_port, port_free
from topics.reads import read_to_end
from trainer.synthetic import demo_examples

pytestmark = [pytest.mark.kafka, pytest.mark.vllm, pytest.mark.timeout(1500)]
JOBS_BEFORE, JOBS_AFTER = 12, 4
TERMINAL = ("job_completed", "job_failed")
TRAINING_ENDS = ("lora_adapter_ready", "training_failed", "training_rejected")


def _free_ports(count: int) -> int:
    """The first of `count` consecutive free loopback ports (node i: client base+2i, controller base+2i+1)."""
    for _ in range(200):
        base = random.randrange(20_000, 40_000, 2)
        if all(port_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no run of free ports")


def _cda(env: dict[str, str], cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cda.cli.main", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


class Sender:
    """Sends the demo's jobs one after another from a thread, keeping each accepted job id."""

    def __init__(self, http: httpx.Client, count: int, tag: str) -> None:
        self.http, self.count, self.tag = http, count, tag
        self.accepted: list[str] = []
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        batch = demo_batch(1)
        for i in range(self.count):
            _, task, data = batch[i % len(batch)]
            headers = {"Idempotency-Key": f"{self.tag}-{i}"}
            # a 503 (a partition's leader moving), or no answer while the supervisor restarts the API, is the API
            # asking to try again: the same Idempotency-Key, so a retry is never a second job
            deadline, why = time.monotonic() + 420, ""
            while time.monotonic() < deadline:
                try:
                    answer = self.http.post("/company-automation/process", json={"task": task, "data": data},
                                            headers=headers)
                except httpx.HTTPError as exc:
                    why = str(exc)
                    time.sleep(1.0)
                    continue
                if answer.status_code == 202:
                    self.accepted.append(answer.json()["job_id"])
                    break
                why = f"{answer.status_code} {answer.text[:200]}"
                time.sleep(1.0)
            else:
                self.errors.append(f"job {i}: {why}")
            time.sleep(0.5)


def test_a_node_of_the_cluster_is_killed_under_jobs_and_training_and_nothing_is_lost_or_doubled(
        tiny_model: str, vllm_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home, kafka_port=_free_ports(6), kafka_credentials=home / "kafka" / "credentials.json",
                        topic_prefix=f"cl{uuid.uuid4().hex[:6]}.", base_model=tiny_model, vllm_url=vllm_url,
                        inference_url=f"http://127.0.0.1:{free_port()}", api_port=free_port(),
                        example_api_url=f"http://127.0.0.1:{free_port()}", agent_job_deadline_s=900)
    env = {**settings_env(settings), "COLUMNS": "220"}
    env.pop("CDA_KAFKA_BOOTSTRAP")  # --kafka-brokers names the cluster's nodes
    status_file = StatusFile(home / "up" / "status.json")
    with (tmp_path / "up.out").open("w") as log:
        up = subprocess.Popen([sys.executable, "-m", "cda.cli.main", "up", "--example-api", "--external-vllm",
                               "--kafka-brokers", "3"], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        ready = _cda(env, tmp_path, "status", "--wait", "420", timeout=500)
        assert ready.returncode == 0, ready.stdout + ready.stderr + (tmp_path / "up.out").read_text()[-3000:]
        kafka = next(p for p in status_file.read()["parts"] if p["name"] == "kafka")
        bootstrap = kafka["address"]
        assert len(bootstrap.split(",")) == 3 and "3 nodes" in kafka["detail"], kafka
        cluster = settings.model_copy(update={"kafka_bootstrap": bootstrap, "kafka_brokers": 3,
                                              "kafka_replication": 3, "kafka_min_insync": 2})

        demo = Demo(cluster, Console(file=io.StringIO(), width=200))
        demo.wait_for_stack()
        demo.onboard()
        http = httpx.Client(base_url=api_url(settings), headers={"Authorization": f"Bearer {demo.key}"}, timeout=30)
        trainings = []
        for seed in (1, 2):
            examples = [{"task": e.task, "data": json.loads(e.payload_json), "tool": e.tool_name,
                         "arguments": e.arguments} for e in demo_examples(40, seed=seed)]
            asked = http.post("/company-automation/train-adapter", json={"examples": examples, "steps": 10},
                              headers={"Idempotency-Key": f"cluster-train-{seed}"})
            assert asked.status_code == 202, asked.text
            trainings.append(asked.json()["request_id"])

        before = Sender(http, JOBS_BEFORE, "before")
        before.thread.start()
        eventually(lambda: len(before.accepted) >= JOBS_BEFORE // 3, 300, "a third of the jobs accepted")
        victim = home / "kafka" / "node-2" / "broker.pid"
        pid = int(victim.read_text())
        os.kill(pid, signal.SIGKILL)
        before.thread.join(900)
        assert not before.errors, before.errors

        def restarted() -> bool:
            part = next(p for p in status_file.read()["parts"] if p["name"] == "kafka")
            return part["restarts"] >= 1 and part["state"] == "ready" and victim.exists() \
                and int(victim.read_text()) != pid
        eventually(restarted, 300, "the killed node restarted by the supervisor")

        after = Sender(http, JOBS_AFTER, "after")
        after.thread.start()
        after.thread.join(900)
        assert not after.errors, after.errors
        accepted = before.accepted + after.accepted
        assert len(set(accepted)) == JOBS_BEFORE + JOBS_AFTER

        def ended() -> bool:
            try:
                return all(http.get(f"/company-automation/jobs/{j}").json().get("status") in FINAL for j in accepted)
            except (httpx.HTTPError, ValueError):
                return False
        eventually(ended, 600, "every job ended", interval_s=2.0)
        terminal = Counter(r.event["job_id"] for r in read_to_end(cluster, "company_automation_jobs")
                           if r.event.type in TERMINAL)
        assert {j: terminal[j] for j in accepted} == {j: 1 for j in accepted}  # 0 lost, 0 doubled

        def training_ends() -> Counter[str]:
            ends: Counter[str] = Counter()
            for topic in ("lora_adapter_ready", "lora_training_status"):
                for r in read_to_end(cluster, topic):
                    if r.event.type in TRAINING_ENDS:
                        ends[str(r.event["request_id"])] += 1
            return ends
        eventually(lambda: all(training_ends()[r] >= 1 for r in trainings), 900, "both training requests ended")
        ends = training_ends()
        assert {r: ends[r] for r in trainings} == {r: 1 for r in trainings}
        parts = {p["name"]: p for p in status_file.read()["parts"]}
        assert all(parts[name]["state"] in ("ready", "running", "external") for name in parts), parts
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(180)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait(30)
    assert up.returncode == 0, (tmp_path / "up.out").read_text()[-3000:]
    for i in range(6):
        assert port_free(settings.kafka_port + i), f"port {settings.kafka_port + i} still held"
