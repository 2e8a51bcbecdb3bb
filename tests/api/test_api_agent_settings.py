"""Company self-service over the real broker: a company reads its agent settings and changes its own, within the
operator's policy (address ranges, host suffixes, its secret namespace); each change is an `agent_configured`
event the agents read; what is outside the policy is a 422 naming it and produces nothing; no company sees or
changes another's."""

from __future__ import annotations

from api.agent_policy import env_prefix
from streams.agent_settings import AgentSettings
from tests.api.api_support import api_stack, events_of


def test_a_company_sets_its_own_agents_within_the_operators_policy(catalog, store) -> None:  # type: ignore[no-untyped-def]
    for stack in api_stack(catalog, store, api_company_networks="10.0.0.0/8, fd00::/8",
                           api_company_host_suffixes="corp.example", api_company_max_concurrency=8):
        company, key = stack.company()
        other, other_key = stack.company()
        with stack.client(key) as client, stack.client(other_key) as other_client:
            first = client.get("/company-automation/agent-settings").json()
            assert first["use_adapter"] is True and first["allowed_hosts"] == [] and first["policy"]["networks"] == [
                "10.0.0.0/8", "fd00::/8"]
            secret = f"env:{env_prefix(company)}BILLING_TOKEN"
            changed = client.put("/company-automation/agent-settings", json={
                "use_adapter": False, "concurrency": 6, "allowed_hosts": ["10.1.2.3:8080", "billing.corp.example:443",
                                                                         "[fd00::1]:9000"],
                "allowed_secrets": [secret], "secret_hosts": {secret: ["billing.acme.example:443"]}})
            assert changed.status_code == 200, changed.text
            assert client.get("/company-automation/agent-settings").json()["allowed_hosts"] == sorted(
                ["10.1.2.3:8080", "billing.corp.example:443", "[fd00::1]:9000"])  # read your writes
            kept = client.put("/company-automation/agent-settings", json={"concurrency": 2, "job_deadline_s": 600}).json()
            assert kept["use_adapter"] is False and kept["allowed_secrets"] == [secret]  # left out: kept
            assert kept["secret_hosts"] == {secret: ["billing.acme.example:443"]}
            assert kept["job_deadline_s"] == 600 and other_client.get(
                "/company-automation/agent-settings").json()["job_deadline_s"] == 3600  # the operator's default

            refused = {
                "allowed_hosts[0]": {"allowed_hosts": ["192.168.1.5:80"]},
                "allowed_hosts[1]": {"allowed_hosts": ["api.corp.example:443", "evil.example:443"]},
                "allowed_hosts[2]": {"allowed_hosts": ["api.corp.example:443", "a.corp.example:8443", "b.corp.example"]},
                "allowed_secrets[0]": {"allowed_secrets": [f"env:{env_prefix(other)}TOKEN"]},
                "concurrency": {"concurrency": 9},
                "job_deadline_s": {"job_deadline_s": 3601},
                "secret_hosts['env:OTHER']": {"secret_hosts": {"env:OTHER": ["x.example:443"]}},
                f"secret_hosts[{secret!r}][0]": {"secret_hosts": {secret: ["billing.acme.example"]}},
            }
            for where, body in refused.items():
                answer = client.put("/company-automation/agent-settings", json=body)
                assert answer.status_code == 422 and f"body.{where}" in answer.json()["error"], (where, answer.text)
            assert client.put("/company-automation/agent-settings", json={"step_limit": 5}).status_code == 422
            assert other_client.get("/company-automation/agent-settings").json()["allowed_hosts"] == []

        configured = [e for e in events_of(stack.settings, "company_agents") if e.company_id == company]
        assert len(configured) == 2  # one event per accepted change, none for the refusals
        final = AgentSettings.from_event(configured[-1])
        assert (final.use_adapter, final.concurrency, final.step_limit) == (False, 2, 1000)
        assert final.allowed_secrets == frozenset({secret}) and final.job_deadline_s == 600
        assert final.secret_hosts == {secret: frozenset({"billing.acme.example:443"})}
        assert not [e for e in events_of(stack.settings, "company_agents") if e.company_id == other]
