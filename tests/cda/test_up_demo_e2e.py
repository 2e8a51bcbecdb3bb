"""The main job end to end: `cda up --example-api` supervises every part (on the session's broker and vLLM), `cda status`
answers from another process, `cda demo` runs the seed's workflow through the API (onboard acme, train and serve its
adapter, process a batch, dashboards), a part killed with SIGKILL is restarted and the table says so, a second
`cda demo` reuses the key, the tools and the adapter, `cda dashboard --html` draws every chart in headless Chromium
with the demo's data, and SIGTERM stops the parts in reverse order."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from cda.client import SyncCompanyAutomation
from cda.key_file import read_key
from cda.stack import api_url
from cda.supervisor import StatusFile, pid_alive
from core.children import alive
from core.settings import Settings, settings_env
from tests.cda.browser import assert_dashboard_drawn
from tests.helpers import eventually, free_port, port_free
from trainer.synthetic import demo_call

pytestmark = [pytest.mark.kafka, pytest.mark.vllm, pytest.mark.timeout(2400)]
STEPS = os.environ.get("CDA_TEST_DEMO_ADAPTER_STEPS", "130")  # the demo's own default: its calls must be right
# the demo's tasks (cda.demo_records.demo_batch) and the one tool each record of theirs goes to
TOOL_OF_TASK = {"Bill the customer for the order": "zx_post", "Log this complaint": "qv_file",
                "Update the customer's address": "kr_sync"}
PARTS = ["kafka", "inference", "trainer", "agents", "api", "example-api"]


def _cda(env: dict[str, str], cwd: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cda.cli.main", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def test_cda_up_runs_the_demo_twice_restarts_a_dead_part_draws_the_dashboards_and_stops_in_order(
        kafka_bootstrap: str, tiny_model: str, vllm_url: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", kafka_bootstrap=kafka_bootstrap, topic_prefix=f"up{uuid.uuid4().hex[:6]}.",
                        base_model=tiny_model, vllm_url=vllm_url, inference_url=f"http://127.0.0.1:{free_port()}",
                        api_port=free_port(), example_api_url=f"http://127.0.0.1:{free_port()}")
    env = {**settings_env(settings), "COLUMNS": "220"}
    status_file = StatusFile(settings.home / "up" / "status.json")
    with (tmp_path / "up.out").open("w") as log:
        up = subprocess.Popen([sys.executable, "-m", "cda.cli.main", "up", "--example-api", "--external-vllm"], env=env,
                              cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        ready = _cda(env, tmp_path, "status", "--wait", "300", timeout=400)
        assert ready.returncode == 0, ready.stdout + ready.stderr + (tmp_path / "up.out").read_text()[-3000:]
        assert all(part in ready.stdout for part in PARTS) and "external" in ready.stdout  # the session's broker

        first = _cda(env, tmp_path, "demo", "--examples", "300", "--steps", STEPS, "--invoices", "4")
        assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
        print(first.stdout)
        assert "company acme created" in first.stdout and "tools imported" in first.stdout
        assert "gate passed" in first.stdout and "served by vLLM" in first.stdout
        assert "6 of 6 right" in first.stdout and "WRONG" not in first.stdout, first.stdout[-4000:]
        key = read_key(settings, "acme")
        assert key and key not in first.stdout + first.stderr  # the key goes to its 0600 file, not the output
        assert (settings.home / "keys" / "acme.key").stat().st_mode & 0o077 == 0
        with httpx.Client(base_url=api_url(settings), headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
            version = api.get("/company-automation/adapters").json()["active"]
            assert version
            jobs = api.get("/company-automation/jobs").json()["jobs"]
            assert len(jobs) == 3 and all(j["status"] in ("completed", "failed") for j in jobs)
            assert [j["right"] for j in jobs] == [True, True, True], jobs  # job-level truth, from the agents' verdict
            for summary in jobs:  # every record was decided with the served adapter and sent to the example API
                job = api.get(f"/company-automation/jobs/{summary['job_id']}").json()
                assert job["adapter_version"] == version
                assert all(u["tool"] and (u["status_code"] or u["error_kind"]) for u in job["units"]), job["units"]
                for unit in job["units"]:
                    assert unit["tool"] in first.stdout
            assert sum(len(api.get(f"/company-automation/jobs/{j['job_id']}").json()["units"]) for j in jobs) == 6
            first_jobs = {j["job_id"] for j in jobs}

        # a part that dies comes back, and the table says so
        agents = next(p for p in status_file.read()["parts"] if p["name"] == "agents")  # type: ignore[index, union-attr]
        os.kill(agents["pid"], signal.SIGKILL)
        eventually(lambda: next(p for p in status_file.read()["parts"]  # type: ignore[index, union-attr]
                                if p["name"] == "agents")["restarts"] == 1, 60, "the agents restarted")
        shown = _cda(env, tmp_path, "status", "--wait", "120", timeout=200)
        assert shown.returncode == 0, shown.stdout
        assert "restarted (1x); last SIGKILL" in shown.stdout

        # the first run's jobs are the company's automation history now, and its memory holds entries that decide
        # nothing (one reads like history naming the wrong tool): none of it may pull the calls off
        with httpx.Client(base_url=api_url(settings), headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
            for note in ("Weekends are closed", "'Log this complaint' was done with kr_sync (completed)"):
                assert api.post("/company-automation/memory", json={"content": note, "kind": "fact"}).status_code == 202
        second = _cda(env, tmp_path, "demo", "--invoices", "4", timeout=600)
        assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
        print(second.stdout)
        assert "key kept" in second.stdout and "tools kept" in second.stdout
        assert f"adapter {version} served already" in second.stdout and "training acme's adapter" not in second.stdout
        # the notes pull no call to another tool (the complaint stays with qv_file); the second run's records are
        # new, and the demo adapter's own rate (0.997 over 600 demo records with these notes, the same without)
        # leaves room for one slipped digit in an argument, which the first run's 6 of 6 does not
        right = re.search(r"(\d) of 6 right", second.stdout)
        assert right and int(right.group(1)) >= 5, second.stdout[-4000:]
        with httpx.Client(base_url=api_url(settings), headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
            jobs = api.get("/company-automation/jobs").json()["jobs"]
            assert len(jobs) == 6 and all(j["status"] in ("completed", "failed") for j in jobs)
            assert len(api.get("/company-automation/adapters").json()["versions"]) == 1  # no second training
            for summary in (j for j in jobs if j["job_id"] not in first_jobs):
                units = api.get(f"/company-automation/jobs/{summary['job_id']}").json()["units"]
                assert {u["tool"] for u in units} == {TOOL_OF_TASK[summary["task"]]}, (summary, units)

        # the seed's own example, as written, through the Python client: right calls for every invoice
        invoices = [{"customer": f"c{300 + 11 * i}", "amount": 10 + 7 * i} for i in range(4)]
        with SyncCompanyAutomation(api_url(settings), key) as automation:
            result = automation.process_company_data(company_id="acme", data={"task": "process_invoices",
                                                                              "invoices": invoices},
                                                     use_adapter=True, timeout_s=300)
        assert result.status == "completed" and result.adapter_version == version, result
        assert [(r.tool, r.arguments) for r in result.records] == [demo_call(i) for i in invoices], result.records
        assert all(r.status == "completed" and r.answer for r in result.records)

        page = tmp_path / "served.html"
        drawn = _cda(env, tmp_path, "dashboard", "--html", str(page), timeout=120)
        assert drawn.returncode == 0, drawn.stdout + drawn.stderr
        with httpx.Client(base_url=api_url(settings), headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
            body = api.get("/company-automation/dashboards").json()
        assert {p["name"] for p in body["panels"]} == {"jobs_by_status_over_time", "job_latency_percentiles",
                                                       "tool_error_rate", "adapters_by_company"}
        assert "cdn" not in page.read_text().lower().split("<script>", 2)[0]  # plotly.js is inline, nothing fetched
        assert_dashboard_drawn(page, body, tmp_path)
        assert (tmp_path / "dashboard.html").exists()  # the demo's own copy
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(300)
    final = status_file.read()
    assert final is not None and final["stopped"] is True
    assert not any(pid_alive(p["pid"]) for p in final["parts"] if p["name"] != "kafka")  # type: ignore[union-attr]
    # one line per change (no terminal): a part's last line says how it stopped; the broker is the session's
    words = [line.split() for line in (tmp_path / "up.out").read_text().splitlines()]
    order = [w[1] for w in words if "stopped" in w and w[-1] != "stopped" and w[0] != "cda"]
    assert order == list(reversed(PARTS[1:])), order
    print(json.dumps(final, indent=1)[:2000])


def test_cda_up_killed_outright_leaves_nothing_and_starts_again(kafka_bootstrap: str, tiny_model: str, vllm_url: str,
                                                               tmp_path: Path) -> None:
    """SIGKILL to `cda up` (no cleanup of its own runs): the kernel ends every part with it, their ports are free,
    and the next `cda up` starts (before: the parts lived on, and the next start met their ports held)."""
    settings = Settings(home=tmp_path / "home", kafka_bootstrap=kafka_bootstrap, topic_prefix=f"up{uuid.uuid4().hex[:6]}.",
                        base_model=tiny_model, vllm_url=vllm_url, inference_url=f"http://127.0.0.1:{free_port()}",
                        api_port=free_port())
    env = {**settings_env(settings), "COLUMNS": "220"}
    status_file = StatusFile(settings.home / "up" / "status.json")
    ports = [int(settings.inference_url.rsplit(":", 1)[1]), settings.api_port]
    for attempt in ("killed", "again"):
        with (tmp_path / f"up-{attempt}.out").open("w") as log:
            up = subprocess.Popen([sys.executable, "-m", "cda.cli.main", "up", "--external-vllm"], env=env, cwd=tmp_path,
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            ready = _cda(env, tmp_path, "status", "--wait", "300", timeout=400)
            assert ready.returncode == 0, ready.stdout + (tmp_path / f"up-{attempt}.out").read_text()[-3000:]
            pids = [p["pid"] for p in status_file.read()["parts"] if p["name"] != "kafka"]  # type: ignore[index, union-attr]
            assert pids and all(pid_alive(pid) for pid in pids)
            if attempt == "killed":
                up.kill()
                up.wait(30)
                eventually(lambda left=pids: not any(alive(pid) for pid in left), 30, "every part gone with cda up")
                eventually(lambda: all(port_free(port) for port in ports), 30, "the parts' ports free")
        finally:
            if up.poll() is None:
                up.send_signal(signal.SIGTERM)
                up.wait(300)

