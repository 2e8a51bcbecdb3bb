"""Units of work: a payload that holds a list of records (`{"invoices": [{...}, ...]}`) is processed record
by record — one decision and one call per record, each rendered with the prompt format the adapter was
trained on — and any other payload is one unit."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Unit:
    index: int
    data_json: str  # the record (or the whole payload) as compact JSON: the `Data:` line of the prompt


def records_of(payload: Any) -> list[Any] | None:
    """The payload's list of records: the first top-level value that is a non-empty list of objects."""
    if isinstance(payload, list) and payload and all(isinstance(r, dict) for r in payload):
        return payload
    if isinstance(payload, dict):
        for value in payload.values():
            if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
                return value
    return None


def split_units(payload_json: str) -> list[Unit]:
    payload = json.loads(payload_json)
    records = records_of(payload)
    if records is None:
        return [Unit(0, _compact(payload))]
    return [Unit(i, _compact(record)) for i, record in enumerate(records)]


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
