"""Company keys: made once, kept as salted hashes on the compacted `company_keys` topic (never in clear in an
event, a log record or a table), surviving a restart of the API, rotated and revoked; the operator key."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from pydantic import ValidationError

from api.keys import UNKNOWN_KEY, KeyTable, issue_key, revocation
from api.server import running_api
from core.settings import Settings, settings_env
from tests.api.api_support import ApiStack, auth, raw_values
from tests.helpers import eventually, free_port
from topics.catalog import CATALOG

pytestmark = pytest.mark.kafka


def test_a_key_checks_against_its_hash_and_a_revocation_sticks_in_any_order() -> None:
    issued = issue_key("acme")
    table = KeyTable()
    table.apply(issued.event)
    assert table.check(issued.key) == ("acme", "")
    assert table.check(issued.key[:-1] + "x")[0] is None and table.check("nonsense")[0] is None
    assert issued.key.split(".", 1)[1] not in str(issued.event.to_json())
    revoked = revocation("acme", str(issued.event["key_id"]), "test")
    late = KeyTable()  # compaction may leave the revocation before (or without) the issue
    late.apply(revoked)
    late.apply(issued.event)
    assert late.check(issued.key)[0] is None and "revoked" in late.check(issued.key)[1]
    key_id = str(issued.event["key_id"])  # revoked or unknown, right secret or not: one answer, no company named
    answers = {late.check(issued.key), late.check(f"cda_{key_id}.wrong"), late.check("cda_nosuchid.secret")}
    assert answers == {(None, UNKNOWN_KEY)} and "acme" not in UNKNOWN_KEY
    foreign = KeyTable()  # another company cannot take over a key id
    foreign.apply(issued.event)
    foreign.apply(revocation("globex", str(issued.event["key_id"]), "hijack"))
    assert foreign.check(issued.key) == ("acme", "")


def test_a_placeholder_operator_key_is_refused_outside_development() -> None:
    assert Settings(api_operator_key="changeme").api_operator_key is not None  # development: allowed
    with pytest.raises(ValidationError, match="api_operator_key"):
        Settings(environment="production", api_operator_key="changeme")
    Settings(environment="production", api_operator_key="x" * 40)


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**settings_env(settings, base={"PATH": "/usr/bin:/bin"}), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "cda.cli.main", "companies", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_cli_keys_survive_restarts_rotate_revoke_and_never_appear_in_clear(
        api: ApiStack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = api.settings
    created = _cli(settings, "create", "acme")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert _cli(settings, "create", "acme").returncode == 1  # exists
    eventually(lambda: api.client(key).get("/company-automation/tools").status_code == 200, 30, "the key accepted")
    with api.client(key) as client:
        client.post("/company-automation/process", json={"task": "t", "data": {"k": 1}})

    # a second API process (a restart) knows the key from the log alone
    with running_api(settings, free_port(), store=api.store) as url:
        import httpx
        assert httpx.get(f"{url}/company-automation/tools", headers=auth(key)).status_code == 200

    rotated = _cli(settings, "rotate-key", "acme")
    assert rotated.returncode == 0, rotated.stderr
    new_key = rotated.stdout.strip()
    eventually(lambda: api.client(new_key).get("/company-automation/tools").status_code == 200, 30, "the new key")
    eventually(lambda: api.client(key).get("/company-automation/tools").status_code == 401, 30, "the old key refused")
    old = api.client(key).get("/company-automation/tools").json()
    assert "revoked" in old["error"] and key not in old["error"]

    assert _cli(settings, "revoke-key", "acme").returncode == 0
    eventually(lambda: api.client(new_key).get("/company-automation/tools").status_code == 401, 30, "all keys revoked")
    assert api.client("cda_0123456789abcdef.nope").get("/company-automation/tools").status_code == 401
    assert api.client(new_key).get("/company-automation/tools").headers["WWW-Authenticate"] == "Bearer"

    secrets = [k.split(".", 1)[1].encode() for k in (key, new_key)]
    for spec in CATALOG:
        for raw in raw_values(settings, spec.name):
            assert not any(s in raw for s in secrets), f"a key in clear on {spec.name}"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert not any(s.decode() in logged for s in secrets)
    tables = [r[0] for r in api.store.query("SELECT name FROM system.tables WHERE database = {db:String} "
                                            "AND engine NOT LIKE '%View%'", {"db": settings.clickhouse_database})]
    for table in tables:
        dump = str(api.store.query(f"SELECT * FROM {table}"))
        assert not any(s.decode() in dump for s in secrets), f"a key in clear in {table}"


def test_operator_creates_rotates_and_revokes_over_the_api(catalog, store) -> None:  # type: ignore[no-untyped-def]
    from tests.api.api_support import api_stack

    operator = "op-" + "k" * 40
    for stack in api_stack(catalog, store, api_operator_key=operator):
        import httpx
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            assert client.post("/admin/companies", json={"company_id": "initech"}).status_code == 401
            assert client.post("/admin/companies", json={"company_id": "initech"},
                               headers=auth("wrong")).status_code == 401
            made = client.post("/admin/companies", json={"company_id": "initech"}, headers=auth(operator))
            assert made.status_code == 201, made.text
            key = made.json()["api_key"]
            assert client.post("/admin/companies", json={"company_id": "initech"}, headers=auth(operator)).status_code == 409
            assert client.get("/company-automation/tools", headers=auth(key)).status_code == 200
            # a company key is no operator key
            assert client.post("/admin/companies", json={"company_id": "x2"}, headers=auth(key)).status_code == 401
            new = client.post("/admin/companies/initech/rotate-key", headers=auth(operator)).json()["api_key"]
            assert client.get("/company-automation/tools", headers=auth(key)).status_code == 401
            assert client.get("/company-automation/tools", headers=auth(new)).status_code == 200
            assert client.post("/admin/companies/initech/revoke-key", headers=auth(operator)).status_code == 200
            assert client.get("/company-automation/tools", headers=auth(new)).status_code == 401
            assert client.post("/admin/companies/nobody/revoke-key", headers=auth(operator)).status_code == 404


def test_the_api_without_its_topics_says_so_at_once(settings: Settings, store) -> None:  # type: ignore[no-untyped-def]
    """No topics under the prefix: `cda api serve` exits 1 with one line naming them and the fix; in process, the
    keys follower's error is raised at start-up instead of waiting out CDA_AGENT_START_TIMEOUT_S."""
    env = {**settings_env(settings.model_copy(update={"api_port": free_port()})), "COLUMNS": "300"}
    served = subprocess.run([sys.executable, "-m", "cda.cli.main", "api", "serve"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert served.returncode == 1, served.stderr
    assert "company_keys" in served.stderr and "cda topics apply" in served.stderr and "Traceback" not in served.stderr

    from topics.errors import UnknownTopic

    slow = settings.model_copy(update={"agent_start_timeout_s": 600.0})
    with pytest.raises(UnknownTopic, match="company_keys"):
        with running_api(slow, free_port(), store=store):
            pass
