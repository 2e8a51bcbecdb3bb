"""Units of work: what in a payload is a record, each decided and called on its own.

A payload that holds lists of records (`{"invoices": [{...}], "refunds": [{...}], "currency": "EUR"}`) is
processed record by record, every list of them, in the payload's order; its top-level scalars go along with
every record as context (a record's own field wins), but for `task`: the seed's shape puts the task there, and
the prompt shows it as the task. A bare list of records is those records. An object
without lists of records is one unit. What is neither a record nor context (a list of plain values, a nested
object beside lists of records, an empty list) is named in `left_out`, so a job can report it: nothing in a
payload is dropped without a word. A payload with no record at all has no units."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Unit:
    index: int
    data_json: str  # the record (or the whole payload) as compact JSON: the `Data:` line of the prompt
    source: str = ""  # where in the payload the record stood, e.g. `invoices[2]` ("" for a whole payload)


@dataclass(frozen=True)
class Split:
    units: tuple[Unit, ...]
    left_out: tuple[tuple[str, str], ...] = ()  # (where, why) for each part of the payload that is not processed


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(r, dict) for r in value)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def split_payload(payload: Any) -> Split:
    """The payload's units, and what of it is left out and why."""
    if _is_records(payload):
        return Split(tuple(Unit(i, _compact(r), f"[{i}]") for i, r in enumerate(payload)))
    if not isinstance(payload, dict) or not payload:
        kind = "an empty object" if isinstance(payload, dict) else (
            "a list that is not of objects" if isinstance(payload, list) else "a single value")
        return Split((), (("data", f"{kind}: expected an object (one record) or lists of objects (records)"),))
    lists = [key for key, value in payload.items() if _is_records(value)]
    if not lists:
        return Split((Unit(0, _compact(payload)),))
    context = {key: value for key, value in payload.items() if _is_scalar(value) and key != "task"}
    units: list[Unit] = []
    for key in lists:
        for i, record in enumerate(payload[key]):
            units.append(Unit(len(units), _compact({**context, **record}), f"{key}[{i}]"))
    left_out = tuple((key, _why(value)) for key, value in payload.items()
                     if key not in lists and not _is_scalar(value))
    return Split(tuple(units), left_out)


def _why(value: Any) -> str:
    if isinstance(value, list):
        return "an empty list" if not value else "a list of values, not of records (objects)"
    return "a nested object beside the lists of records (only a record's own fields are data)"


def split_units(payload_json: str) -> list[Unit]:
    return list(split_payload(json.loads(payload_json)).units)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
