"""What makes two job requests the same request: a hash over everything a `data_process_requested` asks for,
keyed by its job id. The API answers a repeated Idempotency-Key with the first job only when the bodies hash
alike (else 409), also after a restart, from the hash the job projection keeps instead of the company's data."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

HASHED_FIELDS = ("task", "payload_json", "tools", "session_id", "use_adapter", "expected_json")


def request_hash(job_id: str, fields: Mapping[str, Any]) -> str:
    """sha256 over the job id and the request's fields (missing ones as null), canonical JSON."""
    asked = {name: fields.get(name) for name in HASHED_FIELDS}
    asked["tools"] = sorted(asked["tools"] or [])
    text = json.dumps([job_id, asked], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()
