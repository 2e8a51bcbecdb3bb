"""Deterministic ids: every event of a job, and the Idempotency-Key of every call, derive from the job, the
unit and the step. A worker that re-emits an event after a crash emits the *same* event (the views count
it once), and a call sent again carries the same key (the company's API performs it once)."""

from __future__ import annotations

import hashlib
import uuid

NAMESPACE = uuid.UUID("6f1c5a1e-2f8b-5c1a-9d2e-cda000000001")
UNIT_STEPS = 100  # steps one unit may take; step numbers are unit * UNIT_STEPS + the unit's own step


def event_id(job_id: str, event_type: str, *parts: object) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join([job_id, event_type, *(str(p) for p in parts)])))


def step_number(unit: int, unit_step: int = 0) -> int:
    return unit * UNIT_STEPS + unit_step


def call_id(job_id: str, step: int) -> str:
    """An identifier (the contract's form) unique within the job and stable across retries and crashes."""
    short = job_id if len(job_id) <= 100 else hashlib.sha256(job_id.encode()).hexdigest()[:32]
    return f"{short}.s{step}"


def idempotency_key(company_id: str, job_id: str, step: int) -> str:
    """What the company's API sees: the same for every attempt of one call, different for every call."""
    return str(uuid.uuid5(NAMESPACE, f"{company_id}/{job_id}/call/{step}"))


def job_id_for(company_id: str, request_id: str) -> str:
    """The job a request starts: repeated requests with one request id are one job."""
    return f"job-{uuid.uuid5(NAMESPACE, f'{company_id}/{request_id}').hex[:24]}"


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()[:16]
