"""Where a resource is read, as the caller reached this server (the URLs in 202 answers)."""

from __future__ import annotations

from fastapi import Request


def job_url(request: Request, job_id: str) -> str:
    return str(request.url_for("get_job", job_id=job_id))


def job_events_url(request: Request, job_id: str) -> str:
    return str(request.url_for("job_events", job_id=job_id))


def training_url(request: Request, request_id: str) -> str:
    return str(request.url_for("get_training", request_id=request_id))
