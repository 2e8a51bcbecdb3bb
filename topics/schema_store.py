"""Every published Avro schema of the catalog, by event type, version and CRC-64-AVRO fingerprint.

Schemas live as `topics/schemas/<event_type>/v<N>.avsc`; every version ever published stays there so
that old events stay readable. The highest version is the current one, used to write and to read.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

from topics.errors import SchemaNotFound

SCHEMA_DIR = Path(__file__).parent / "schemas"
ENVELOPE_FIELDS = ("event_id", "company_id", "occurred_at", "schema_version")
_VERSION_FILE = re.compile(r"^v(\d+)\.avsc$")


@dataclass(frozen=True)
class EventSchema:
    """One published version of one event type's schema."""

    event_type: str
    version: int
    raw: dict[str, Any]
    parsed: dict[str, Any] = field(repr=False)
    fingerprint: bytes  # 8 bytes, little-endian CRC-64-AVRO of the canonical form

    @property
    def full_name(self) -> str:
        return f"{self.raw.get('namespace', '')}.{self.raw['name']}".lstrip(".")

    @property
    def field_names(self) -> frozenset[str]:
        return frozenset(f["name"] for f in self.raw["fields"])


def fingerprint_of(parsed: dict[str, Any]) -> bytes:
    """The 8-byte little-endian CRC-64-AVRO fingerprint of a parsed schema's canonical form."""
    as_hex = fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO")
    return struct.pack("<Q", int(as_hex, 16))


def load_schema_file(event_type: str, path: Path) -> EventSchema:
    match = _VERSION_FILE.match(path.name)
    if match is None:
        raise SchemaNotFound(f"{path}: schema files are named v<N>.avsc")
    raw = json.loads(path.read_text())
    parsed = parse_schema(raw, _write_hint=False)
    return EventSchema(event_type, int(match.group(1)), raw, parsed, fingerprint_of(parsed))


class SchemaStore:
    """Lookup of schemas by (event type, version) and by fingerprint, loaded from a schema folder."""

    def __init__(self, root: Path = SCHEMA_DIR) -> None:
        self._versions: dict[str, dict[int, EventSchema]] = {}
        self._by_fingerprint: dict[bytes, EventSchema] = {}
        self._by_name: dict[str, str] = {}
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            for path in sorted(folder.glob("v*.avsc")):
                schema = load_schema_file(folder.name, path)
                self._versions.setdefault(folder.name, {})[schema.version] = schema
                self._by_fingerprint[schema.fingerprint] = schema
                self._by_name[schema.full_name] = folder.name

    @property
    def event_types(self) -> list[str]:
        return sorted(self._versions)

    def versions(self, event_type: str) -> list[EventSchema]:
        return [self._versions_of(event_type)[v] for v in sorted(self._versions_of(event_type))]

    def current(self, event_type: str) -> EventSchema:
        versions = self._versions_of(event_type)
        return versions[max(versions)]

    def get(self, event_type: str, version: int) -> EventSchema:
        try:
            return self._versions_of(event_type)[version]
        except KeyError:
            raise SchemaNotFound(f"event type {event_type!r} has no schema version {version}") from None

    def by_fingerprint(self, fp: bytes) -> EventSchema:
        try:
            return self._by_fingerprint[fp]
        except KeyError:
            raise SchemaNotFound(f"no schema in the catalog has fingerprint {fp.hex()}") from None

    def event_type_named(self, full_name: str) -> str | None:
        """The event type whose record is called `full_name` (e.g. `cda.events.JobAccepted`), if any."""
        return self._by_name.get(full_name)

    def _versions_of(self, event_type: str) -> dict[int, EventSchema]:
        try:
            return self._versions[event_type]
        except KeyError:
            known = ", ".join(self.event_types)
            raise SchemaNotFound(f"unknown event type {event_type!r}; known: {known}") from None


@lru_cache(maxsize=1)
def default_store() -> SchemaStore:
    """The schemas shipped in this repository, loaded once per process."""
    return SchemaStore()
