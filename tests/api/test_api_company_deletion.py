"""Forgetting a company over the real broker and chDB: `DELETE /admin/companies/{id}` revokes its keys, ends and
tombstones every record of it on the compacted topics (keys, tools, settings, memory, sessions), deletes its
adapters and files and its ClickHouse rows, and leaves another company untouched."""

from __future__ import annotations

import httpx

from tests.api.api_support import api_stack, auth, raw_values
from tests.helpers import eventually
from topics.catalog import CATALOG

OPERATOR = "op-" + "d" * 40
TOOL = {"name": "zx_post", "description": "Post an invoice", "method": "POST", "url": "https://billing.example/post",
        "parameters": {"type": "object", "properties": {"ref": {"type": "string"}}}}
MARKER = "forget-me-7f3a"


def test_deleting_a_company_forgets_what_the_deployment_holds_of_it(catalog, store) -> None:  # type: ignore[no-untyped-def]
    for stack in api_stack(catalog, store, api_operator_key=OPERATOR):
        with httpx.Client(base_url=stack.url, timeout=60) as client:
            keys = {c: client.post("/admin/companies", json={"company_id": c}, headers=auth(OPERATOR)).json()["api_key"]
                    for c in ("doomed", "kept")}
            for company, key in keys.items():
                assert client.post("/company-automation/register-tools", json={"tools": [TOOL]},
                                   headers=auth(key)).status_code == 202
                assert client.post("/company-automation/memory", json={"content": f"{MARKER} of {company}"},
                                   headers=auth(key)).status_code == 202
                assert client.post("/company-automation/sessions", json={}, headers=auth(key)).status_code == 202
            adapters = stack.settings.home / "adapters" / "doomed" / "v1"
            adapters.mkdir(parents=True)
            (adapters / "adapter_model.safetensors").write_bytes(b"weights")
            doomed = keys["doomed"]
            eventually(lambda key=doomed: len(client.get("/company-automation/memory", headers=auth(key)).json()[
                "entries"]) == 1, 30, "doomed's memory in the view")

            assert client.delete("/admin/companies/doomed", headers=auth(keys["kept"])).status_code == 401
            assert client.delete("/admin/companies/nobody", headers=auth(OPERATOR)).status_code == 404
            answer = client.delete("/admin/companies/doomed", headers=auth(OPERATOR))
            assert answer.status_code == 200, answer.text
            done = answer.json()
            assert len(done["keys_revoked"]) == 1 and done["ended"]["tool_removed"] == 1
            assert done["ended"]["memory_deleted"] == 1 and done["ended"]["session_closed"] == 1
            assert done["tombstones"]["company_keys"] == 1 and done["tombstones"]["company_tools"] == 1
            assert "adapters/doomed" in done["folders_removed"] and not adapters.exists()
            assert "memory_facts" in done["rows_deleted_from"] and done["remains"]

            assert client.get("/company-automation/tools", headers=auth(keys["doomed"])).status_code == 401
            kept = client.get("/company-automation/memory", headers=auth(keys["kept"])).json()["entries"]
            assert [e["content"] for e in kept] == [f"{MARKER} of kept"]
            assert client.get("/company-automation/tools", headers=auth(keys["kept"])).json()["tools"]
            rows = stack.store.query("SELECT count() FROM memory_facts WHERE company_id = 'doomed' "
                                     "AND event_type = 'memory_written'")
            assert rows[0][0] == 0
        # the last record of each of its keys on every compacted topic is a tombstone; the other's are not
        for spec in (s for s in CATALOG if "compact" in s.cleanup_policy):
            last: dict[bytes, bytes] = {}
            for record in raw_values(stack.settings, spec.name):
                key, _, value = record.partition(b"|")
                last[key] = value
            assert all(v == b"" for k, v in last.items() if k == b"doomed" or k.startswith(b"doomed/")), spec.name
            if spec.name in ("company_tools", "company_memory", "company_keys"):
                assert any(v for k, v in last.items() if k.startswith(b"kept")), spec.name
