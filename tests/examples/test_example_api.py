"""The example company API on loopback: acme's tools as operations, validation naming the field, effects in
SQLite, Idempotency-Key (also under concurrent requests), staged faults, and its own OpenAPI document."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from core.settings import Settings, settings_env
from examples.company_api import ExampleApiError, run_in_thread
from tests.helpers import eventually, free_port
from trainer.synthetic import DEMO_TOOLS

ZX = {"ref": "ACME-c101", "cents": 1200}


def post(url: str, tool: str, body: object, key: str | None = None, **headers: str) -> httpx.Response:
    sent = {k.replace("_", "-"): v for k, v in headers.items()} | ({"Idempotency-Key": key} if key else {})
    return httpx.post(f"{url}/{tool}", json=body, headers=sent, timeout=10)


def counts(url: str, tool: str | None = None) -> dict[str, int]:
    return httpx.get(f"{url}/effects/count", params={"tool": tool} if tool else None).json()


def test_its_openapi_document_holds_exactly_acmes_tools(example_api: str) -> None:
    doc = httpx.get(f"{example_api}/openapi.json").json()
    assert doc["openapi"].startswith("3.") and doc["servers"] == [{"url": example_api}]
    operations = {(path, method): op for path, item in doc["paths"].items() for method, op in item.items()}
    assert sorted(operations) == sorted((f"/{t.name}", "post") for t in DEMO_TOOLS)  # no control endpoints
    for tool in DEMO_TOOLS:
        op = operations[(f"/{tool.name}", "post")]
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        assert (op["operationId"], op["summary"], schema) == (tool.name, tool.description, tool.parameters)
        assert list(schema["properties"]) == list(tool.parameters["properties"])  # the prompt renders this order
        assert "201" in op["responses"]


def test_a_valid_call_is_recorded_and_answered_201(example_api: str) -> None:
    answer = post(example_api, "zx_post", ZX)
    assert answer.status_code == 201
    assert answer.json() == {"id": 1, "tool": "zx_post", "ref": "ACME-c101"}
    assert post(example_api, "kr_sync", {"ref": "ACME-c7", "zip": "1234"}).status_code == 201
    assert [e["arguments"] for e in httpx.get(f"{example_api}/effects", params={"tool": "zx_post"}).json()] == [ZX]
    assert [e["tool"] for e in httpx.get(f"{example_api}/effects").json()] == ["zx_post", "kr_sync"]
    assert counts(example_api)["effects"] == 2 and counts(example_api, "kr_sync")["effects"] == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"ref": "ACME-c1"}, "cents"),
    ({"ref": "ACME-c1", "cents": 5, "note": "x"}, "note"),
    ({"ref": "c1", "cents": 5}, "ref"),
    ({"ref": "ACME-c1", "cents": "5"}, "cents"),
])
def test_a_body_that_does_not_fit_the_schema_is_422_naming_the_field(example_api: str, body: object, field: str) -> None:
    answer = post(example_api, "zx_post", body)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", field]
    assert (counts(example_api)["effects"], counts(example_api)["invalid"]) == (0, 1)


def test_a_body_that_is_not_json_is_422(example_api: str) -> None:
    answer = httpx.post(f"{example_api}/qv_file", content=b"{not json", headers={"Content-Type": "application/json"})
    assert answer.status_code == 422 and counts(example_api)["effects"] == 0


def test_a_repeated_idempotency_key_answers_the_first_response_and_causes_no_second_effect(example_api: str) -> None:
    first = post(example_api, "zx_post", ZX, key="job-1.unit-0.step-0")
    again = post(example_api, "zx_post", ZX, key="job-1.unit-0.step-0")
    other = post(example_api, "zx_post", ZX, key="job-1.unit-1.step-0")
    assert (again.status_code, again.json()) == (first.status_code, first.json()) == (201, first.json())
    assert other.json()["id"] != first.json()["id"]
    seen = counts(example_api)
    assert (seen["calls"], seen["effects"], seen["created"], seen["replayed"]) == (3, 2, 2, 1)


def test_a_key_reused_for_another_request_is_refused(example_api: str) -> None:
    post(example_api, "zx_post", ZX, key="k")
    changed = post(example_api, "zx_post", {**ZX, "cents": 1}, key="k")
    assert changed.status_code == 422 and "different request" in changed.json()["detail"]
    assert post(example_api, "kr_sync", {"ref": "ACME-c1", "zip": "1"}, key="k").status_code == 422
    assert counts(example_api)["effects"] == 1 and counts(example_api)["conflict"] == 2


def test_concurrent_requests_with_one_key_cause_one_effect(example_api: str) -> None:
    n = 16
    start = threading.Barrier(n)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def call() -> None:
        with httpx.Client(timeout=30) as client:
            start.wait()
            answer = client.post(f"{example_api}/qv_file", json={"ref": "ACME-c5", "level": "L2"}, headers={"Idempotency-Key": "same"})
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=call) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == n
    assert {(a.status_code, a.text) for a in answers} == {(201, answers[0].text)}
    assert (counts(example_api)["effects"], counts(example_api)["created"], counts(example_api)["replayed"]) == (1, 1, n - 1)


def test_fail_times_fails_the_first_attempts_of_a_key_then_it_takes_effect_once(example_api: str) -> None:
    statuses = [post(example_api, "zx_post", ZX, key="k1", X_Fail_Times="2").status_code for _ in range(4)]
    assert statuses == [503, 503, 201, 201]
    assert post(example_api, "zx_post", ZX, key="k2", X_Fail_Times="1", X_Fail_Status="429").status_code == 429
    assert (counts(example_api)["effects"], counts(example_api)["failed"], counts(example_api)["calls"]) == (1, 3, 5)


def test_fault_headers_are_checked(example_api: str) -> None:
    assert post(example_api, "zx_post", ZX, X_Fail_Times="1").status_code == 400  # counts attempts of a key: needs one
    assert post(example_api, "zx_post", ZX, key="k", X_Fail_Times="many").status_code == 400
    assert post(example_api, "zx_post", ZX, key="k", X_Fail_Times="1", X_Fail_Status="200").status_code == 400
    assert counts(example_api)["effects"] == 0


def test_a_slow_answer_took_effect_and_its_retry_replays_it(example_api: str) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{example_api}/zx_post", json=ZX, headers={"Idempotency-Key": "slow", "X-Slow-Ms": "3000"}, timeout=0.3)
    retry = post(example_api, "zx_post", ZX, key="slow", X_Slow_Ms="3000")  # a replay answers at once
    assert retry.status_code == 201 and retry.json()["id"] == 1
    assert counts(example_api)["effects"] == 1


def test_staged_faults_fail_the_next_calls_of_a_tool(example_api: str) -> None:
    staged = httpx.post(f"{example_api}/control/faults", json={"tool": "qv_file", "fail_next": 2, "status": 500})
    assert staged.status_code == 200
    complaint = {"ref": "ACME-c9", "level": "L3"}
    assert post(example_api, "zx_post", ZX).status_code == 201  # another tool is not affected
    assert [post(example_api, "qv_file", complaint, key="q").status_code for _ in range(3)] == [500, 500, 201]
    httpx.post(f"{example_api}/control/faults", json={"fail_next": 5})
    assert httpx.delete(f"{example_api}/control/faults").json() == {"cleared": True}
    assert post(example_api, "kr_sync", {"ref": "ACME-c9", "zip": "9"}).status_code == 201
    assert (counts(example_api)["effects"], counts(example_api)["failed"]) == (3, 2)


def test_effects_and_keys_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "acme.sqlite3"
    with run_in_thread(db) as url:
        first = post(url, "zx_post", ZX, key="k").json()
    with run_in_thread(db) as url:
        assert post(url, "zx_post", ZX, key="k").json() == first
        assert counts(url)["effects"] == 1 and counts(url)["calls"] == 2


def test_a_taken_port_is_a_clear_error(tmp_path: Path, example_api: str) -> None:
    port = int(example_api.rsplit(":", 1)[1])
    with pytest.raises(ExampleApiError, match="cannot listen"):
        with run_in_thread(tmp_path / "other.sqlite3", port=port):
            pass


def test_cda_example_api_serve_listens_where_configured_and_keeps_its_db_under_home(tmp_path: Path) -> None:
    port = free_port()
    env = settings_env(Settings(home=tmp_path / "home", example_api_url=f"http://127.0.0.1:{port}"))
    server = subprocess.Popen([sys.executable, "-m", "cda.cli.main", "example-api", "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: _answers(url) or server.poll() is not None, what="the example API answering")
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        assert httpx.get(f"{url}/openapi.json").json()["servers"] == [{"url": url}]
        assert post(url, "qv_file", {"ref": "ACME-c1", "level": "L1"}).status_code == 201
        counted = subprocess.run([sys.executable, "-m", "cda.cli.main", "example-api", "count"], env=env,
                                 capture_output=True, text=True, timeout=60)
        assert counted.returncode == 0 and "effects=1 calls=1" in counted.stdout, counted.stderr
        assert (tmp_path / "home" / "example-api" / "acme.sqlite3").exists()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_the_bridge_through_staged_faults_causes_each_effect_once(tmp_path: Path) -> None:
    """Onboarded from its own document, acme's tools called by the real bridge: a 503 twice, then a slow answer
    that times out the attempt after the effect was recorded — each retried with one key, each one effect."""
    from streams.agent_settings import AgentSettings
    from streams.bridge import ApiBridge, CallOutcome
    from streams.openapi import tools_from_openapi
    from streams.openapi_document import load_document

    config = Settings(home=tmp_path / "home", bridge_backoff_s=0.01, bridge_deadline_s=20.0, bridge_attempts=4)
    with run_in_thread(tmp_path / "acme.sqlite3") as url:
        agent = AgentSettings("acme", allowed_hosts=frozenset({url.removeprefix("http://")}))  # host:port
        doc, source = load_document(f"{url}/openapi.json")
        tools = {t.name: t for t in tools_from_openapi(doc, "acme", source_url=source, timeout_ms=500)}

        async def calls() -> list[CallOutcome]:
            bridge = ApiBridge(config)
            try:
                async with httpx.AsyncClient() as control:
                    await control.post(f"{url}/control/faults", json={"tool": "zx_post", "fail_next": 2, "status": 503})
                    first = await bridge.call(tools["zx_post"], ZX, "job-1.0.0", agent)
                    await control.post(f"{url}/control/faults", json={"tool": "qv_file", "slow_next": 1, "slow_ms": 3000})
                    second = await bridge.call(tools["qv_file"], {"ref": "ACME-c2", "level": "L1"}, "job-1.1.0", agent)
                    await control.post(f"{url}/control/faults", json={"tool": "kr_sync", "fail_next": 1, "status": 409})
                    third = await bridge.call(tools["kr_sync"], {"ref": "ACME-c3", "zip": "1000"}, "job-1.2.0", agent)
                    again = await bridge.call(tools["zx_post"], ZX, "job-1.0.0", agent)  # after a crash: sent again
                return [first, second, third, again]
            finally:
                await bridge.aclose()

        first, second, third, again = asyncio.run(calls())
        seen = counts(url)
    assert (first.ok, first.status_code, first.attempts) == (True, 201, 3)
    assert (second.ok, second.attempts) == (True, 2) and json.loads(second.result_json)["tool"] == "qv_file"
    assert (third.ok, third.status_code, third.attempts, third.retryable) == (False, 409, 1, False)  # 4xx: not retried
    assert again.result_json == first.result_json
    assert (seen["effects"], seen["created"], seen["failed"], seen["replayed"]) == (2, 2, 3, 2)
