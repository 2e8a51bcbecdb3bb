"""A company's agent settings (from `agent_configured` on the compacted `company_agents` topic): whether
its jobs ask its adapter, how many units a job may take, how many run at once, which hosts its tools may
reach although they resolve to loopback or private addresses, which secrets they may use and to which hosts each
may be sent, and how long one of
its jobs may run (None: the operator's default)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from topics.events import Event


@dataclass(frozen=True)
class AgentSettings:
    company_id: str
    use_adapter: bool = True
    step_limit: int = 1000
    concurrency: int = 4
    allowed_hosts: frozenset[str] = frozenset()
    allowed_secrets: frozenset[str] = frozenset()
    job_deadline_s: int | None = None
    secret_hosts: Mapping[str, frozenset[str]] = field(default_factory=dict, hash=False)  # secret ref -> host:port it may go to

    @classmethod
    def from_event(cls, event: Event) -> AgentSettings:
        data = event.data
        return cls(event.company_id, bool(data["use_adapter"]), int(data["step_limit"]), int(data["concurrency"]),
                   frozenset(data["allowed_hosts"]), frozenset(data["allowed_secrets"]), data.get("job_deadline_s"),
                   {ref: frozenset(hosts) for ref, hosts in (data.get("secret_hosts") or {}).items()})

    def to_fields(self) -> dict[str, object]:
        return {"use_adapter": self.use_adapter, "step_limit": self.step_limit, "concurrency": self.concurrency,
                "allowed_hosts": sorted(self.allowed_hosts), "allowed_secrets": sorted(self.allowed_secrets),
                "job_deadline_s": self.job_deadline_s,
                "secret_hosts": {ref: sorted(hosts) for ref, hosts in sorted(self.secret_hosts.items())}}
