"""Events: small immutable facts, each an Avro record of one event type in the catalog."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

from topics import datum
from topics.checks import check_event
from topics.schema_store import SchemaStore, default_store


@dataclass(frozen=True, slots=True)
class Event:
    """One fact: its event type and its record (envelope fields included), as the current schema reads it."""

    type: str
    data: Mapping[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.data["event_id"])

    @property
    def company_id(self) -> str:
        return str(self.data["company_id"])

    @property
    def occurred_at(self) -> datetime:
        value = self.data["occurred_at"]
        return value if isinstance(value, datetime) else datetime.fromtimestamp(value / 1000, tz=timezone.utc)

    @property
    def schema_version(self) -> int:
        return int(self.data["schema_version"])

    def __getitem__(self, name: str) -> Any:
        return self.data[name]

    @classmethod
    def new(
        cls,
        event_type: str,
        company_id: str,
        *,
        store: SchemaStore | None = None,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
        **fields: Any,
    ) -> Event:
        """Build a validated event of the current schema version, filling the envelope."""
        return cls.from_fields(
            event_type,
            {
                "event_id": event_id or str(uuid.uuid4()),
                "company_id": company_id,
                "occurred_at": occurred_at or datetime.now(timezone.utc),
                **fields,
            },
            store=store,
        )

    @classmethod
    def from_fields(
        cls, event_type: str, fields: Mapping[str, Any], *, store: SchemaStore | None = None, json_mode: bool = False
    ) -> Event:
        """Validate `fields` against the current schema (missing envelope fields are filled) and wrap them."""
        schema = (store or default_store()).current(event_type)
        record = dict(fields)
        record.setdefault("event_id", str(uuid.uuid4()))
        record.setdefault("occurred_at", datetime.now(timezone.utc))
        record.setdefault("schema_version", schema.version)
        conform = datum.from_json if json_mode else datum.check
        conformed = conform(schema.raw, record)
        check_event(event_type, conformed)
        return cls(event_type, MappingProxyType(conformed))

    def check(self) -> Event:
        """This event when it keeps the contract's rules beyond Avro types (read side), else `EventValidationError`."""
        check_event(self.type, self.data)
        return self

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: `type` plus the record's fields."""
        return {"type": self.type, **datum.to_json_value(self.data)}
