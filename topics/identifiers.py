"""The contract's identifier fields, and the check that names the field at fault (the form itself is
`core.identifiers`)."""

from __future__ import annotations

from core.identifiers import is_identifier
from topics.errors import InvalidIdentifier

# every field of the contract that holds an identifier, wherever it appears
IDENTIFIER_FIELDS = frozenset({
    "company_id", "request_id", "job_id", "session_id", "entry_id", "tool_name", "call_id", "version",
    "previous_version", "source_job_id", "key_id",
})


def check_identifier(value: object, field: str = "id") -> str:
    """`value` when it is a safe identifier, else `InvalidIdentifier` naming the field."""
    if not is_identifier(value):
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise InvalidIdentifier(field, f"{shown} is not an identifier (letters, digits, '_', '.', '-'; "
                                       f"a letter or digit first; no '..'; at most 128 characters)")
    return value  # type: ignore[return-value]
