"""The `cda` command line against the real broker: produce, consume, replay, the demo without a stack."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from core.settings import Settings

pytestmark = pytest.mark.kafka
Catalog = Callable[..., Settings]


def jsonl(*records: dict) -> str:  # type: ignore[type-arg]
    return "".join(json.dumps(r) + "\n" for r in records)


def events_in(output: str) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def tool(name: str, **extra: object) -> dict:  # type: ignore[type-arg]
    return {"type": "tool_registered", "company_id": "acme", "tool_name": name, "description": "d",
            "parameters_schema_json": "{}", "url": "https://acme.example/x", **extra}


def test_produce_then_consume_round_trips_json_lines(cli: Callable[..., object]) -> None:
    result = cli("produce", "company_tools", input=jsonl(tool("a"), tool("b", timeout_ms=500)))
    assert result.exit_code == 0, result.output
    assert "produced 2 event(s)" in result.output
    consumed = cli("consume", "company_tools", "--positions")
    assert consumed.exit_code == 0, consumed.output
    got = sorted(events_in(consumed.output), key=lambda e: e["tool_name"])
    assert [e["tool_name"] for e in got] == ["a", "b"]
    assert got[1]["timeout_ms"] == 500 and got[0]["timeout_ms"] == 10000
    assert got[0]["type"] == "tool_registered" and got[0]["schema_version"] == 1
    assert {"_partition", "_offset", "_timestamp", "event_id", "occurred_at"} <= set(got[0])


def test_invalid_json_lines_produce_nothing_and_name_the_field(cli: Callable[..., object]) -> None:
    bad = jsonl(tool("ok"), tool("bad", timeout_ms="soon"))
    result = cli("produce", "company_tools", input=bad)
    assert result.exit_code == 1
    assert "line 2" in result.output and "timeout_ms" in result.output and "expected int" in result.output
    wrong_type = cli("produce", "company_tools", input=jsonl({"type": "job_accepted", "company_id": "acme"}))
    assert wrong_type.exit_code == 1 and "tool_registered" in wrong_type.output
    missing = cli("produce", "company_tools", input=jsonl({"type": "tool_removed", "company_id": "acme"}))
    assert missing.exit_code == 1 and "tool_name" in missing.output and "missing required field" in missing.output
    not_json = cli("produce", "company_tools", input="{oops\n")
    assert not_json.exit_code == 1 and "line 1: not JSON" in not_json.output
    assert events_in(cli("consume", "company_tools").output) == []


def job(i: int) -> dict:  # type: ignore[type-arg]
    return {"type": "job_accepted", "company_id": "acme", "job_id": f"j{i}", "request_id": "r", "task": "t"}


def test_consume_from_offset_and_max(cli: Callable[..., object]) -> None:
    # jobs are keyed by company alone, so one company's jobs share a partition: offsets 0..4
    cli("produce", "company_automation_jobs", input=jsonl(*(job(i) for i in range(5))))
    result = cli("consume", "company_automation_jobs", "--offset", "3")
    assert [e["job_id"] for e in events_in(result.output)] == ["j3", "j4"]
    limited = cli("consume", "company_automation_jobs", "--max", "2")
    assert len(events_in(limited.output)) == 2
    both = cli("consume", "company_tools", "--offset", "1", "--since", "1h")
    assert both.exit_code == 1 and "not both" in both.output


def test_replay_command_into_a_topic_and_for_a_group(cli: Callable[..., object]) -> None:
    cli("produce", "company_automation_jobs", input=jsonl(*(job(i) for i in range(4))))
    result = cli("replay", "company_automation_jobs", "--to-topic", "company_automation_jobs", "--offset", "2")
    assert result.exit_code == 0, result.output
    assert "replayed 2 record(s)" in result.output
    again = [e["job_id"] for e in events_in(cli("consume", "company_automation_jobs").output)]
    assert again == ["j0", "j1", "j2", "j3", "j2", "j3"]  # the range, appended once more for its consumers
    foreign = cli("replay", "company_automation_jobs", "--to-topic", "company_data", "--offset", "3")
    assert foreign.exit_code == 0 and "replayed 3 record(s)" in foreign.output
    read = cli("consume", "company_data")
    assert events_in(read.output) == [] and "does not belong on topic company_data" in read.output  # a reader refuses it
    group = cli("replay", "company_automation_jobs", "--group", "some-projection", "--since", "1h")
    assert group.exit_code == 0, group.output
    assert "group some-projection" in group.output
    neither = cli("replay", "company_tools")
    assert neither.exit_code == 1 and "exactly one of" in neither.output


def test_topics_list_shows_the_catalog(cli: Callable[..., object]) -> None:
    result = cli("topics", "list")
    assert result.exit_code == 0
    for name in ("company_data", "company_automation_jobs", "company_tools", "dead_letters"):
        assert name in result.output


def test_demo_without_a_stack_says_how_to_start_it(catalog: Callable[..., Settings],
                                                  cli_for: Callable[..., Callable[..., Any]]) -> None:
    from tests.helpers import free_port

    nowhere = catalog().model_copy(update={"api_port": free_port(), "inference_url": f"http://127.0.0.1:{free_port()}"})
    result = cli_for(nowhere)("demo", "--wait", "1")
    assert result.exit_code == 1
    assert "nothing answers at http://127.0.0.1:" in result.output and "cda up --example-api" in result.output


def test_projections_run_query_and_rebuild(cli: Callable[..., object]) -> None:
    jobs = [job(i) for i in range(3)] + [{**job(9), "company_id": "globex"}]
    cli("produce", "company_automation_jobs", input=jsonl(*jobs))
    assert cli("projections", "migrate").exit_code == 0
    assert "up to date" in cli("projections", "migrate").output
    ran = cli("projections", "run", "jobs", "tools", "--seconds", "4")
    assert ran.exit_code == 0, ran.output
    assert "jobs: 4 events, 4 rows" in ran.output
    shown = cli("query", "jobs", "--company", "acme")
    assert shown.exit_code == 0, shown.output
    assert all(f"j{i}" in shown.output for i in range(3)) and "j9" not in shown.output
    assert "accepted" in shown.output
    assert "no tools for company acme" in cli("query", "tools", "--company", "acme").output
    rebuilt = cli("projections", "rebuild", "jobs")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "4 events read, 4 rows" in rebuilt.output
    assert "j9" in cli("query", "jobs", "--company", "globex").output
    unknown = cli("query", "nothing", "--company", "acme")
    assert unknown.exit_code == 1 and "known: jobs" in unknown.output
    bad = cli("projections", "rebuild", "nothing")
    assert bad.exit_code == 1 and "unknown projection" in bad.output
