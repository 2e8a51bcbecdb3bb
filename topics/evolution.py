"""Schema evolution: can the current reader schema read what every earlier writer schema wrote, and can
the previous reader read what the current writer writes?

Implements the Avro specification's schema-resolution rules as a checker (cross-checked in the tests
against Apache Avro's own `ReaderWriterCompatibilityChecker`), so a schema change that would make events
unreadable fails the tests before it is published. Two directions, per event type:

- BACKWARD (always, transitively): the current schema reads every earlier version — stored events stay
  readable for ever, since readers always read with the current schema.
- FORWARD (the catalog's policy, default on): the previous version reads the current one — during a
  rolling upgrade an old consumer meets a new writer's events and must not dead-letter them. An event
  type may opt out in `POLICIES`, with the reason; its old consumers then dead-letter new events until
  they are upgraded, and `cda dead-letters redrive` drives those again.

Published versions are also pinned in `schemas/fingerprints.lock`: editing one in place (instead of
adding v<N+1>) is caught too.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from topics.schema_store import SCHEMA_DIR, SchemaStore, default_store

LOCK_FILE = SCHEMA_DIR / "fingerprints.lock"
_PROMOTIONS = {
    "int": {"int", "long", "float", "double"},
    "long": {"long", "float", "double"},
    "float": {"float", "double"},
    "double": {"double"},
    "string": {"string", "bytes"},
    "bytes": {"bytes", "string"},
}


@dataclass(frozen=True)
class Policy:
    """Which compatibility an event type's versions keep. BACKWARD is not optional: stored events stay readable."""

    forward: bool = True  # the previous version reads the current one (old consumers during a rolling upgrade)


DEFAULT_POLICY = Policy()
# per event type: an exception to the default, with the reason why old consumers may miss its new events
POLICIES: dict[str, Policy] = {}


def policy_of(event_type: str) -> Policy:
    return POLICIES.get(event_type, DEFAULT_POLICY)


@dataclass(frozen=True)
class Incompatibility:
    event_type: str
    writer_version: int
    path: str
    reason: str
    reader_version: int | None = None  # None: the current version reads (BACKWARD); else FORWARD

    def __str__(self) -> str:
        reader = "current" if self.reader_version is None else f"v{self.reader_version} (FORWARD)"
        return f"{self.event_type} v{self.writer_version} -> {reader}: {self.path or '<root>'}: {self.reason}"


def collect_names(schema: Any, names: dict[str, dict[str, Any]], namespace: str = "") -> None:
    if isinstance(schema, list):
        for branch in schema:
            collect_names(branch, names, namespace)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "enum", "fixed"):
            ns = schema.get("namespace", namespace)
            names[schema["name"]] = schema
            names[f"{ns}.{schema['name']}".lstrip(".")] = schema
            for field in schema.get("fields", []):
                collect_names(field["type"], names, ns)
        elif kind == "array":
            collect_names(schema["items"], names, namespace)
        elif kind == "map":
            collect_names(schema["values"], names, namespace)


class _Resolver:
    def __init__(self, reader: Any, writer: Any) -> None:
        self.reader_names: dict[str, dict[str, Any]] = {}
        self.writer_names: dict[str, dict[str, Any]] = {}
        collect_names(reader, self.reader_names)
        collect_names(writer, self.writer_names)

    def _deref(self, schema: Any, names: dict[str, dict[str, Any]]) -> Any:
        if isinstance(schema, str) and schema in names:
            return names[schema]
        if isinstance(schema, dict) and schema.get("type") not in ("record", "enum", "fixed", "array", "map"):
            return schema["type"] if isinstance(schema["type"], str) else self._deref(schema["type"], names)
        return schema

    def problems(self, reader: Any, writer: Any, path: str) -> list[tuple[str, str]]:
        reader = self._deref(reader, self.reader_names)
        writer = self._deref(writer, self.writer_names)
        if isinstance(writer, list):
            found = []
            for branch in writer:
                found += self.problems(reader, branch, path)
            return found
        if isinstance(reader, list):
            if any(not self.problems(branch, writer, path) for branch in reader):
                return []
            return [(path, f"no branch of the reader union reads writer type {_kind(writer)}")]
        r_kind, w_kind = _kind(reader), _kind(writer)
        if isinstance(reader, str) or isinstance(writer, str):
            if isinstance(reader, str) and isinstance(writer, str) and reader in _PROMOTIONS.get(writer, {writer}):
                return []
            return [] if r_kind == w_kind and isinstance(reader, str) else [(path, f"writer {w_kind} cannot be read as {r_kind}")]
        if r_kind != w_kind:
            return [(path, f"writer {w_kind} cannot be read as {r_kind}")]
        if r_kind in ("record", "enum", "fixed") and not _names_match(reader, writer):
            return [(path, f"{r_kind} {_full_name(writer)} cannot be read as {_full_name(reader)} (no alias names it)")]
        if r_kind == "record":
            return self._record(reader, writer, path)
        if r_kind == "enum":
            missing = set(writer["symbols"]) - set(reader["symbols"])
            if missing and reader.get("default") not in reader["symbols"]:
                return [(path, f"reader enum lacks symbols {sorted(missing)} and has no default among its symbols")]
            return []
        if r_kind == "array":
            return self.problems(reader["items"], writer["items"], f"{path}[]")
        if r_kind == "map":
            return self.problems(reader["values"], writer["values"], f"{path}{{}}")
        if r_kind == "fixed" and reader["size"] != writer["size"]:
            return [(path, f"fixed size {writer['size']} cannot be read as {reader['size']}")]
        return []

    def _record(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[tuple[str, str]]:
        written = {f["name"]: f for f in writer["fields"]}
        found: list[tuple[str, str]] = []
        for field in reader["fields"]:
            names = [field["name"], *field.get("aliases", [])]
            source = next((written[n] for n in names if n in written), None)
            field_path = f"{path}.{field['name']}".lstrip(".")
            if source is None:
                if "default" not in field:
                    found.append((field_path, "field added without a default: events written before cannot fill it"))
            else:
                found += self.problems(field["type"], source["type"], field_path)
        return found


def _full_name(schema: dict[str, Any]) -> str:
    name = schema["name"]
    return name if "." in name else f"{schema.get('namespace', '')}.{name}".lstrip(".")


def _names_match(reader: dict[str, Any], writer: dict[str, Any]) -> bool:
    """Named types resolve when their unqualified names are equal or a reader alias names the writer."""
    if reader["name"].rsplit(".", 1)[-1] == writer["name"].rsplit(".", 1)[-1]:
        return True
    namespace = _full_name(reader).rpartition(".")[0]
    aliases = {a if "." in a or not namespace else f"{namespace}.{a}" for a in reader.get("aliases", [])}
    return _full_name(writer) in aliases


def _kind(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "union"
    return schema["type"] if isinstance(schema["type"], str) else _kind(schema["type"])


def reader_problems(reader: dict[str, Any], writer: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, reason) for every place where `reader` cannot read data written with `writer`."""
    return _Resolver(reader, writer).problems(reader, writer, "")


def check_store(store: SchemaStore | None = None, policies: dict[str, Policy] | None = None) -> list[Incompatibility]:
    """Every incompatibility of the catalog: the current schema of each event type must read all its
    earlier versions (BACKWARD), and where its policy says FORWARD, the previous version must read the current."""
    store = store or default_store()
    policies = POLICIES if policies is None else policies
    found: list[Incompatibility] = []
    for event_type in store.event_types:
        versions = store.versions(event_type)
        current = versions[-1]
        for old in versions:
            for path, reason in reader_problems(current.raw, old.raw):
                found.append(Incompatibility(event_type, old.version, path, reason))
        if len(versions) > 1 and policies.get(event_type, DEFAULT_POLICY).forward:
            previous = versions[-2]
            for path, reason in reader_problems(previous.raw, current.raw):
                found.append(Incompatibility(event_type, current.version, path, reason, reader_version=previous.version))
    return found


def fingerprints(store: SchemaStore | None = None) -> dict[str, str]:
    """`<event_type>/v<N>` -> fingerprint hex, for the lock file."""
    store = store or default_store()
    return {
        f"{s.event_type}/v{s.version}": s.fingerprint.hex()
        for event_type in store.event_types
        for s in store.versions(event_type)
    }


def changed_published_versions(store: SchemaStore | None = None, lock_file: Path = LOCK_FILE) -> list[str]:
    """Published versions whose schema differs from the locked fingerprint, or that were deleted."""
    locked: dict[str, str] = json.loads(lock_file.read_text()) if lock_file.exists() else {}
    now = fingerprints(store)
    return sorted(
        f"{name}: {'deleted' if name not in now else 'edited in place'} (publish a new version instead)"
        for name, fp in locked.items()
        if now.get(name) != fp
    )


def write_lock(store: SchemaStore | None = None, lock_file: Path = LOCK_FILE) -> None:
    """Pin the fingerprints of every version now in the catalog (run after adding a version)."""
    lock_file.write_text(json.dumps(fingerprints(store), indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":  # python -m topics.evolution [--lock]
    if "--lock" in sys.argv:
        write_lock()
    problems = [str(p) for p in check_store()] + changed_published_versions()
    print("\n".join(problems) or "all schema versions compatible")
    sys.exit(1 if problems else 0)
