"""Candidates the trainer's gate asks, staged by inference from the adapter store: with a store configured, the
trainer puts a candidate (and the version it is compared with) into the store and asks the gateway to stage it
(`POST /v1/candidates`); inference downloads it into its own home, checks its hash like any announced version
(`adapter_places.company_adapter_dir`), and loads it on the first vLLM server, the one the gate asks. So gating,
like serving, needs no disk shared between the trainer and inference.

A staged name is the gate's own (`eval-<company>-<8 hex>`, `eval-served-<company>-<8 hex>`), never a served one,
and a company's candidate only ever comes from that company's URIs.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from core.settings import Settings
from inference.adapter_places import company_adapter_dir
from inference.errors import AdapterInvalid
from inference.vllm_api import VllmApi

EVAL_NAME = re.compile(r"^eval(?:-served)?-(?P<company>.+)-[0-9a-f]{8}$")


class CandidateRequest(BaseModel):
    company_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")
    name: str = Field(min_length=1, max_length=200, description="eval-<company>-<8 hex> or eval-served-<company>-<8 hex>")
    uri: str = Field(min_length=1, max_length=2000, description="The version in the adapter store (or the "
                     "company's registry folder on a shared disk).")


def candidate_name(company: str, tag: str, served: bool = False) -> str:
    """The name a gate loads a candidate (or the served version it compares with) under; `tag`: 8 hex digits."""
    return f"eval-{'served-' if served else ''}{company}-{tag}"


def checked(company: str, name: str) -> str:
    match = EVAL_NAME.match(name)
    if match is None or match["company"] != company:
        raise AdapterInvalid("invalid_name", f"{name!r} is not a candidate name of {company} "
                             f"(eval-{company}-<8 hex> or eval-served-{company}-<8 hex>)")
    return name


class CandidateStage:
    """Stages and drops the gate's candidates on one vLLM server."""

    def __init__(self, settings: Settings, api: VllmApi) -> None:
        self.settings = settings
        self.api = api

    def stage(self, company: str, name: str, uri: str) -> str:
        """`uri` downloaded (hash checked) and loaded as `name`; the server's URL."""
        checked(company, name)
        path = company_adapter_dir(self.settings, company, uri)
        self.api.load_or_refuse(name, str(path))
        return self.api.url

    def drop(self, company: str, name: str) -> None:
        self.api.unload_adapter(checked(company, name))
