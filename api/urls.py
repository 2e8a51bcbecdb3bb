"""Where a resource is read, as the caller reached this server (the URLs in 202 answers). Built from the base URL
rather than by route lookup: it is on the path of every accepted request."""

from __future__ import annotations

from fastapi import Request

PREFIX = "/company-automation"


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


def job_url(request: Request, job_id: str) -> str:
    return f"{_base(request)}/jobs/{job_id}"


def job_events_url(request: Request, job_id: str) -> str:
    return f"{_base(request)}/jobs/{job_id}/events"


def training_url(request: Request, request_id: str) -> str:
    return f"{_base(request)}/training/{request_id}"
