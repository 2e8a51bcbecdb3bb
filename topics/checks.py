"""What a field's meaning needs beyond its Avro type, checked in one place that producers and consumers share.

Avro says `url` is a string; the contract says it is an http(s) URL. These checks run when an event is
built (`Event.new`, `cda produce`, the API) and when one is read (`EventConsumer.poll` dead-letters an
event that fails them), so a bad fact neither enters the log nor reaches a worker.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import jsonschema

from core.json_schemas import check_schema, remote_refs
from topics.errors import EventValidationError
from topics.identifiers import IDENTIFIER_FIELDS, check_identifier

HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
MAX_TOOL_TIMEOUT_MS = 300_000
SECRET_REF = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]{0,127}|file:/[^\x00-\x1f]{1,1023})$")
_HOST_PORT = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[^:\[\]]+):([0-9]{1,5})$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")

Record = Mapping[str, Any]
# identifier fields that may be empty: a failed call whose model output named no tool at all
MAY_BE_EMPTY = frozenset({("tool_call_failed", "tool_name")})
Check = Callable[[Record], None]


def _fail(field: str, message: str) -> EventValidationError:
    return EventValidationError(field, message)


def check_json(record: Record, field: str) -> Any:
    """The parsed value of a JSON text field."""
    try:
        return json.loads(record[field])
    except (TypeError, ValueError) as exc:
        raise _fail(field, f"expected JSON text: {exc}") from None


def check_http_url(value: str, field: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _fail(field, f"expected an http(s) URL with a host, got {value[:80]!r}")


def check_secret_ref(value: str, field: str) -> None:
    if not SECRET_REF.match(value):
        raise _fail(field, "expected a secret reference (env:NAME or file:/absolute/path), never a secret itself")


def check_range(record: Record, field: str, low: float, high: float) -> None:
    value = record.get(field)
    if value is not None and not low <= value <= high:
        raise _fail(field, f"expected a value from {low:g} to {high:g}, got {value!r}")


def _tool_registered(record: Record) -> None:
    schema = check_json(record, "parameters_schema_json")
    if not isinstance(schema, dict):
        raise _fail("parameters_schema_json", "expected a JSON Schema object")
    try:
        check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise _fail("parameters_schema_json", f"not a valid JSON Schema: {exc.message}") from None
    found = remote_refs(schema)
    if found:
        raise _fail(f"parameters_schema_json.{found[0][0]}", f"must point inside the schema ('#/...'), not "
                                                             f"{found[0][1]!r}: other documents are never fetched")
    if record["method"] not in HTTP_METHODS:
        raise _fail("method", f"expected one of {', '.join(sorted(HTTP_METHODS))}, got {record['method']!r}")
    check_http_url(record["url"], "url")
    check_range(record, "timeout_ms", 1, MAX_TOOL_TIMEOUT_MS)
    for name, value in record["headers"].items():
        if not _HEADER_NAME.match(name) or any(c in value for c in "\r\n\x00"):
            raise _fail(f"headers[{name!r}]", "expected an HTTP header name and a value without line breaks")
    if record.get("secret_ref") is not None:
        check_secret_ref(record["secret_ref"], "secret_ref")


def _tool_names(record: Record) -> None:
    for i, name in enumerate(record.get("tools") or ()):
        check_identifier(name, f"tools[{i}]")


def _data_process_requested(record: Record) -> None:
    check_json(record, "payload_json")
    _tool_names(record)
    for name, ref in (record.get("secret_refs") or {}).items():
        check_secret_ref(ref, f"secret_refs[{name!r}]")


def _training_requested(record: Record) -> None:
    check_range(record, "rank", 1, 1024)
    check_range(record, "learning_rate", 1e-8, 1.0)
    check_range(record, "max_steps", 1, 10_000_000)
    check_range(record, "max_examples", 1, 100_000_000)


def _agent_configured(record: Record) -> None:
    check_range(record, "step_limit", 1, 100_000)
    check_range(record, "concurrency", 1, 256)
    check_range(record, "job_deadline_s", 1, 7 * 24 * 3600)
    for i, host in enumerate(record["allowed_hosts"]):
        found = _HOST_PORT.match(host)
        if not found or any(c in host for c in "/@ \t\r\n") or len(host) > 261 or not 1 <= int(found[1]) <= 65535:
            raise _fail(f"allowed_hosts[{i}]", f"expected host:port (a name or IP, IPv6 as [addr]:port), got {host!r}: "
                                               "an entry allows one port, never all of a host's")
    for i, ref in enumerate(record["allowed_secrets"]):
        check_secret_ref(ref, f"allowed_secrets[{i}]")
    for ref, hosts in (record.get("secret_hosts") or {}).items():
        if ref not in record["allowed_secrets"]:
            raise _fail(f"secret_hosts[{ref!r}]", "names a secret that allowed_secrets does not hold")
        for i, host in enumerate(hosts):
            if not _HOST_PORT.match(host) or any(c in host for c in "/@ \t\r\n"):
                raise _fail(f"secret_hosts[{ref!r}][{i}]", f"expected host:port, got {host!r}")


_REGISTRY_URI = re.compile(r"^https?://[^/\s@]+(/[^\s]*)?/v1/adapters/[0-9a-f]{64}$")
_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,62}(/[^\s]*)?/[0-9a-f]{64}$")


def _adapter_uri(record: Record) -> None:
    """An absolute file:// folder (a shared disk), an adapter registry's `.../v1/adapters/<sha256>`, or an S3
    store's `s3://bucket/prefix/<sha256>`."""
    uri = record["uri"]
    if uri.startswith("s3://"):
        if not _S3_URI.match(uri):
            raise _fail("uri", f"expected s3://bucket[/prefix]/<sha256>, got {uri[:120]!r}")
        return
    if uri.startswith(("http://", "https://")):
        if not _REGISTRY_URI.match(uri):
            raise _fail("uri", f"expected <registry>/v1/adapters/<sha256>, got {uri[:120]!r}")
        return
    path = uri.removeprefix("file://")
    if not path.startswith("/") or "\x00" in path:
        raise _fail("uri", f"expected an absolute file:// URI of an adapter folder, or an adapter registry's "
                           f"<registry>/v1/adapters/<sha256>, got {uri[:80]!r}")


def _json_fields(*fields: str) -> Check:
    def check(record: Record) -> None:
        for field in fields:
            check_json(record, field)
    return check


CHECKS: dict[str, tuple[Check, ...]] = {
    "tool_registered": (_tool_registered,),
    "data_process_requested": (_data_process_requested,),
    "job_accepted": (_tool_names,),
    "tool_call_requested": (_json_fields("arguments_json"),),
    "tool_call_completed": (_json_fields("result_json"),),
    "job_completed": (_json_fields("result_json"),),
    "lora_training_requested": (_training_requested,),
    "agent_configured": (_agent_configured,),
    "lora_adapter_ready": (_adapter_uri,),
    "adapter_activated": (_adapter_uri,),
    "adapter_refused": (_adapter_uri,),
}


_ID_FIELDS: dict[str, tuple[str, ...]] = {}
# identifiers already seen to be good: this runs on every event read, and ids recur (companies, jobs, tools)
_GOOD_IDS: set[str] = set()
_GOOD_IDS_MAX = 200_000


def _identifier_fields(event_type: str, record: Record) -> tuple[str, ...]:
    """The identifier fields of an event type, worked out once per type (this runs on every event read)."""
    fields = _ID_FIELDS.get(event_type)
    if fields is None:
        fields = _ID_FIELDS[event_type] = tuple(f for f in record if f in IDENTIFIER_FIELDS)
    return fields


def check_event(event_type: str, record: Record) -> None:
    """Raise `EventValidationError` naming the field when `record` breaks a rule of its event type."""
    for field in _identifier_fields(event_type, record):
        value = record[field]
        if value in _GOOD_IDS or value is None or (value == "" and (event_type, field) in MAY_BE_EMPTY):
            continue
        check_identifier(value, field)
        if len(_GOOD_IDS) >= _GOOD_IDS_MAX:
            _GOOD_IDS.clear()
        _GOOD_IDS.add(value)
    for check in CHECKS.get(event_type, ()):
        check(record)
