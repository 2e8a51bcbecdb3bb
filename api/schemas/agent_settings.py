"""A company's own agent settings: what it may read and set itself, and the operator's policy around it."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas.common import Request


class AgentSettingsPublic(BaseModel):
    use_adapter: bool = Field(description="Jobs ask the company's adapter unless a request says otherwise.")
    concurrency: int = Field(description="Units (and tool calls) of one job in flight at once.")
    step_limit: int = Field(description="Most units one job may take (the operator's).")
    allowed_hosts: list[str] = Field(description="Private or loopback hosts the company's tools may reach.")
    allowed_secrets: list[str] = Field(description="Secret references the company's tools may use.")
    job_deadline_s: int = Field(description="Seconds one job may run from its request before it fails `deadline`.")
    secret_hosts: dict[str, list[str]] = Field(description="Per secret reference, the hosts (host:port) it may be "
                                                           "sent to; over https unless the host is in allowed_hosts.")
    policy: dict[str, list[str] | int] = Field(description="What the company may allow itself: networks, host "
                                                           "suffixes, secret prefixes, max_concurrency.")


class AgentSettingsUpdate(Request):
    """Fields left out keep their value."""

    use_adapter: bool | None = None
    concurrency: int | None = Field(default=None, ge=1, le=1024)
    allowed_hosts: list[str] | None = Field(default=None, max_length=64)
    allowed_secrets: list[str] | None = Field(default=None, max_length=64)
    secret_hosts: dict[str, list[str]] | None = Field(default=None, max_length=64, description=(
        "Per secret reference, the hosts (host:port) it may be sent to; replaces the whole map."))
    job_deadline_s: int | None = Field(default=None, ge=1, le=7 * 24 * 3600,
                                       description="Seconds one job may run, at most the operator's default.")
