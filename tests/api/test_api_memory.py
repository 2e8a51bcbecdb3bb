"""The API's memory and session routes on the real broker and chDB: entries written and deleted as events (a
deletion leaves a tombstone and the view), what bad input gets, and another company's entry or session
answering 404 exactly like one that does not exist."""

from __future__ import annotations

import pytest

from tests.api.api_support import ApiStack, events_of, raw_values
from tests.helpers import eventually

pytestmark = pytest.mark.kafka


def test_memory_entries_and_sessions_through_the_api(api: ApiStack) -> None:
    acme, acme_key = api.company()
    _, other_key = api.company()
    owner, other = api.client(acme_key), api.client(other_key)

    written = owner.post("/company-automation/memory", json={"content": "Default currency: CHF", "tags": ["billing"]})
    assert written.status_code == 202
    entry = written.json()["entry_id"]
    eventually(lambda: owner.get(f"/company-automation/memory/{entry}").status_code == 200, 30, "the entry in the view")
    assert owner.get(f"/company-automation/memory/{entry}").json()["content"] == "Default currency: CHF"

    too_long = owner.post("/company-automation/memory", json={"content": "x" * (api.settings.memory_max_entry_chars + 1)})
    assert too_long.status_code == 422 and "content" in too_long.text and str(api.settings.memory_max_entry_chars) in too_long.text
    assert owner.post("/company-automation/memory", json={"content": "ok", "kind": "secret"}).status_code == 422
    assert owner.post("/company-automation/memory", json={"content": "ok", "colour": "red"}).status_code == 422

    refused = [other.get(f"/company-automation/memory/{entry}").status_code,
               other.delete(f"/company-automation/memory/{entry}").status_code]
    assert refused == [404, 404]

    assert owner.delete(f"/company-automation/memory/{entry}").json() == {"deleted": [entry]}
    eventually(lambda: owner.get(f"/company-automation/memory/{entry}").status_code == 404, 30, "the entry leaving the view")
    kinds = [e.type for e in events_of(api.settings, "company_memory") if e.data.get("entry_id") == entry]
    assert kinds == ["memory_written", "memory_deleted"]
    assert f"{acme}/{entry}|".encode() in raw_values(api.settings, "company_memory")  # its key's tombstone (no value)
    assert owner.delete(f"/company-automation/memory/{entry}").status_code == 404

    second = owner.post("/company-automation/memory", json={"content": "Preferred depot: Brenner"}).json()["entry_id"]
    assert owner.delete("/company-automation/memory").json() == {"deleted": [second]}

    session = owner.post("/company-automation/sessions", json={}).json()["session_id"]
    assert other.post(f"/company-automation/sessions/{session}/close").status_code == 404
    assert owner.post(f"/company-automation/sessions/{session}/close").json() == {"session_id": session, "closed": True}
    assert owner.post("/company-automation/sessions/ses-unknown/close").status_code == 404
