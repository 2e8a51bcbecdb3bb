"""Deterministic sample records for any schema version: test fixtures and benchmark load, never real data."""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timezone
from typing import Any

from topics.evolution import collect_names
from topics.identifiers import IDENTIFIER_FIELDS


def sample_record(schema: dict[str, Any], seed: int = 0, company_id: str = "acme") -> dict[str, Any]:
    """A record valid against `schema` (a raw Avro record schema), the same for the same seed."""
    names: dict[str, dict[str, Any]] = {}
    collect_names(schema, names)
    rng = random.Random(seed)
    record = _value(schema, rng, names)
    record.update({"event_id": str(uuid.UUID(int=rng.getrandbits(128))), "company_id": company_id})
    return _meaningful(schema["name"], record, rng)


def _meaningful(record_name: str, record: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Values that keep the contract's rules beyond Avro types (identifiers, JSON text, URLs, ranges)."""
    for name, value in list(record.items()):
        if name in IDENTIFIER_FIELDS and isinstance(value, str):
            record[name] = f"x{value}"[:128]
        elif name.endswith("_json") and isinstance(value, str):
            record[name] = json.dumps({"value": value})
        elif name == "tools" and isinstance(value, list):
            record[name] = [f"t{v}" if isinstance(v, str) else v for v in value]
        elif name == "uri" and isinstance(value, str):
            record[name] = f"file:///adapters/{value}"
        elif name == "allowed_hosts" and isinstance(value, list):
            record[name] = [f"host{i}.example:443" for i in range(len(value))]
        elif name == "allowed_secrets" and isinstance(value, list):
            record[name] = [f"env:SECRET_{i}" for i in range(len(value))]
        elif name == "secret_refs" and isinstance(value, dict):
            record[name] = {k: f"env:SECRET_{i}" for i, k in enumerate(value)}
    if isinstance(record.get("secret_hosts"), dict):  # bound only secrets the record allows, to host:port
        record["secret_hosts"] = {ref: [f"api{i}.example:443"] for i, ref in enumerate(record.get("allowed_secrets") or [])}
    if record_name == "ToolRegistered" or "parameters_schema_json" in record:
        record.update(parameters_schema_json='{"type":"object"}', method="POST",
                      url=f"http://127.0.0.1:8080/{rng.randint(0, 99)}", timeout_ms=rng.randint(1, 30_000),
                      headers={f"X-H{i}": str(v) for i, v in enumerate((record.get("headers") or {}).values())})
        if record.get("secret_ref") is not None:
            record["secret_ref"] = "env:TOOL_TOKEN"
    bounds = {"rank": (1, 64), "max_steps": (1, 1000), "max_examples": (1, 1000), "step_limit": (1, 1000),
              "concurrency": (1, 64)}
    for name, (low, high) in bounds.items():
        if isinstance(record.get(name), int):
            record[name] = max(low, min(high, record[name]))
    if isinstance(record.get("learning_rate"), float):
        record["learning_rate"] = 1e-3
    return record


def _value(schema: Any, rng: random.Random, names: dict[str, dict[str, Any]]) -> Any:
    if isinstance(schema, list):
        non_null = [b for b in schema if b != "null"]
        return _value(rng.choice(non_null), rng, names) if non_null and rng.random() < 0.7 else None
    if isinstance(schema, str):
        if schema in names:
            return _value(names[schema], rng, names)
        return _primitive(schema, None, rng)
    kind = schema["type"]
    if kind == "record":
        return {f["name"]: _value(f["type"], rng, names) for f in schema["fields"]}
    if kind == "enum":
        return rng.choice(schema["symbols"])
    if kind == "array":
        return [_value(schema["items"], rng, names) for _ in range(rng.randint(0, 3))]
    if kind == "map":
        return {f"k{i}": _value(schema["values"], rng, names) for i in range(rng.randint(0, 3))}
    if isinstance(kind, str) and kind in ("int", "long", "string", "bytes", "double", "float", "boolean", "null"):
        return _primitive(kind, schema.get("logicalType"), rng)
    return _value(kind, rng, names)


def _primitive(kind: str, logical: str | None, rng: random.Random) -> Any:
    if logical == "timestamp-millis":
        return datetime(2026, 1, 1, tzinfo=timezone.utc).replace(microsecond=rng.randint(0, 999) * 1000)
    if logical == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128)))
    return {
        "null": lambda: None,
        "boolean": lambda: rng.random() < 0.5,
        "int": lambda: rng.randint(0, 1000),
        "long": lambda: rng.randint(0, 10**12),
        "float": lambda: round(rng.random() * 100, 2),
        "double": lambda: rng.random() * 1000,
        "string": lambda: "".join(rng.choice("abcdefghij_0123456789") for _ in range(rng.randint(3, 24))),
        "bytes": lambda: rng.randbytes(rng.randint(0, 16)),
    }[kind]()
