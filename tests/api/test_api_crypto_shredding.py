"""Crypto-shredding over the real broker and chDB: a company's content is sealed on the topics with its own data
key; after `DELETE /admin/companies/{id}` a replay from the beginning reads `[forgotten]` where its content was,
and neither the broker's files nor chDB's hold a marker value it sent. Another company reads as before."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from api.routers.jobs import WITHHELD, withhold_forgotten_notes
from tests.api.api_support import api_stack, auth, raw_values
from tests.helpers import eventually
from topics.consumer import EventConsumer
from topics.positions import Position
from topics.sealing import FORGOTTEN_JSON, FORGOTTEN_TEXT, KeyRing, SealingSerde
from topics.serde import serde_for

pytestmark = pytest.mark.kafka
OPERATOR = "op-" + "s" * 40


def _files_holding(folder: Path, marker: str) -> list[str]:
    found = subprocess.run(["grep", "-rla", marker, str(folder)], capture_output=True, text=True)
    return found.stdout.split()


def _replayed(settings, topic: str) -> list:  # type: ignore[no-untyped-def]
    """Every event of `topic` from its beginning, read as a new process would (a fresh key ring)."""
    serde = SealingSerde(serde_for(), KeyRing(settings))
    with EventConsumer(settings, f"replay-{uuid.uuid4()}", serde=serde) as consumer:
        consumer.assign(topic, Position.beginning(), until_end=True)
        return [r.event for r in consumer]


def test_a_forgotten_companys_history_no_longer_reads_anywhere(catalog, store) -> None:  # type: ignore[no-untyped-def]
    marks = {c: f"mark-{c}-{uuid.uuid4().hex[:12]}" for c in ("doomed", "kept")}
    for stack in api_stack(catalog, store, api_operator_key=OPERATOR):
        with httpx.Client(base_url=stack.url, timeout=60) as client:
            keys = {c: client.post("/admin/companies", json={"company_id": c}, headers=auth(OPERATOR)).json()["api_key"]
                    for c in marks}
            jobs = {}
            for company, key in keys.items():
                answer = client.post("/company-automation/process", headers=auth(key),
                                     json={"task": f"file {marks[company]}", "data": {"note": marks[company]}})
                assert answer.status_code == 202, answer.text
                jobs[company] = answer.json()["job_id"]
                assert client.post("/company-automation/memory", json={"content": f"{marks[company]} in memory"},
                                   headers=auth(key)).status_code == 202
            for company, key in keys.items():
                path = f"/company-automation/jobs/{jobs[company]}"
                eventually(lambda p=path, k=key: client.get(p, headers=auth(k)).status_code == 200, 30, "the job's view")
            # sealed at rest from the start: no topic holds either company's content in the clear
            for topic in ("company_data", "company_memory"):
                raw = b"\n".join(raw_values(stack.settings, topic))
                assert all(m.encode() not in raw for m in marks.values()), topic
                assert b"sealed:v1:" in raw
            before = {e.company_id: e for e in _replayed(stack.settings, "company_data")}
            assert json.loads(before["doomed"]["payload_json"]) == {"note": marks["doomed"]}
            chdb = Path(stack.settings.clickhouse_dsn.removeprefix("chdb://"))
            if stack.store.embedded:
                eventually(lambda d=chdb: bool(_files_holding(d, marks["doomed"])), 30, "the rows reaching chDB's files")

            answer = client.delete("/admin/companies/doomed", headers=auth(OPERATOR))
            assert answer.status_code == 200, answer.text
            assert answer.json()["tombstones"]["company_data_keys"] >= 1

        after = _replayed(stack.settings, "company_data")
        doomed = [e for e in after if e.company_id == "doomed"]
        kept = [e for e in after if e.company_id == "kept"]
        assert doomed and all(e["payload_json"] == FORGOTTEN_JSON and e["task"] == FORGOTTEN_TEXT for e in doomed)
        assert json.loads(kept[0]["payload_json"]) == {"note": marks["kept"]}
        memory = [e for e in _replayed(stack.settings, "company_memory") if e.type == "memory_written"]
        assert all(e["content"] == FORGOTTEN_TEXT for e in memory if e.company_id == "doomed")
        assert any(marks["kept"] in str(e["content"]) for e in memory if e.company_id == "kept")

        if credentials := os.environ.get("CDA_KAFKA_CREDENTIALS"):  # the session's own broker: its files are here
            assert _files_holding(Path(credentials).parent / "data", marks["doomed"]) == []
        if stack.store.embedded:
            eventually(lambda d=chdb: _files_holding(d, marks["doomed"]) == [], 90, "doomed's old parts leaving chDB's disk")
            assert _files_holding(chdb, marks["kept"]), "the other company's rows are still stored"


def test_a_prompt_that_quoted_a_deleted_memory_entry_is_withheld() -> None:
    step = {"type": "step_started", "prompt": "Notes: the secret is 42", "memory_entries": ["e1", "e2"]}
    assert withhold_forgotten_notes(step, lambda entry: True) == step
    assert withhold_forgotten_notes(step, lambda entry: entry != "e2")["prompt"] == WITHHELD
    other = {"type": "tool_call_requested", "arguments_json": "{}"}
    assert withhold_forgotten_notes(other, lambda entry: False) == other
