"""From a tool and a model's arguments to the HTTP request the bridge sends, decided without any I/O.

The arguments are checked against the tool's JSON schema first (a model's output is untrusted input), so
an invalid call is refused with the field at fault and nothing is sent. Then: `{name}` placeholders of
the URL template are filled from the arguments (URL-quoted, so an argument cannot add a path, a host or
a query), and the rest of the arguments go as the JSON body (POST, PUT, PATCH) or as query parameters
(GET, DELETE; lists repeat the key, as OpenAPI's default `form` style does).

Headers: the tool's static headers; a header value may contain `{secret}`, which is replaced by the
tool's secret (e.g. `{"X-Api-Key": "{secret}"}`); when no header does, the secret is sent as
`Authorization: Bearer <secret>`. `Idempotency-Key` and `Host` are always the bridge's own; a header that
is not printable ASCII makes the call a `bad_url` (it could not be sent).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from jsonschema import exceptions as schema_errors

from core.json_schemas import cached_validator
from core.json_schemas import errors as schema_errors_of
from streams.errors import BadUrl, InvalidArguments, MissingSecret
from streams.secrets import SecretValue
from streams.tools import Tool

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
QUERY_METHODS = frozenset({"GET", "DELETE"})
SECRET_PLACEHOLDER = "{secret}"
BRIDGE_HEADERS = frozenset({"host", "idempotency-key", "content-length", "transfer-encoding"})
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HEADER_VALUE = re.compile(r"^[\x20-\x7e]*$")
_HOST = re.compile(r"^[A-Za-z0-9._:-]+$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_MAX_REPORTED_ERRORS = 3


@dataclass(frozen=True)
class PlannedCall:
    """The request a tool call becomes, before its host is resolved and pinned."""

    method: str
    url: httpx.URL
    json_body: dict[str, Any] | None


def _field(error: schema_errors.ValidationError) -> str:
    return "arguments" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)


def validate_arguments(tool: Tool, arguments: Mapping[str, Any]) -> None:
    """`InvalidArguments` naming each field at fault when `arguments` do not fit the tool's schema."""
    if not isinstance(arguments, Mapping):
        raise InvalidArguments(f"tool {tool.name!r}: arguments must be a JSON object, not {type(arguments).__name__}")
    try:
        json.dumps(dict(arguments), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArguments(f"tool {tool.name!r}: arguments are not JSON: {exc}") from None
    try:
        validator = cached_validator(json.dumps(dict(tool.parameters), sort_keys=True))
    except schema_errors.SchemaError as exc:
        raise InvalidArguments(f"tool {tool.name!r} has an invalid arguments schema: {exc.message[:200]}") from None
    found = schema_errors_of(validator, dict(arguments))
    if found:
        details = "; ".join(f"{_field(e)}: {e.message[:200]}" for e in found[:_MAX_REPORTED_ERRORS])
        more = f" (and {len(found) - _MAX_REPORTED_ERRORS} more)" if len(found) > _MAX_REPORTED_ERRORS else ""
        raise InvalidArguments(f"tool {tool.name!r}: {details}{more}")


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def _fill_template(tool: Tool, arguments: Mapping[str, Any]) -> tuple[str, set[str]]:
    used: set[str] = set()

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        value = arguments.get(name)
        if value is None or isinstance(value, (dict, list)):
            raise InvalidArguments(f"tool {tool.name!r}: arguments.{name} must be a string or number "
                                   "(the URL template needs it)")
        used.add(name)
        return quote(_scalar(value), safe="")

    return _PLACEHOLDER.sub(fill, tool.url), used


def _query(arguments: Mapping[str, Any]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, value in arguments.items():
        if value is None:
            continue
        if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
            pairs.extend((key, _scalar(v)) for v in value)
        else:
            pairs.append((key, _scalar(value)))
    return pairs


def plan_call(tool: Tool, arguments: Mapping[str, Any]) -> PlannedCall:
    """Validate `arguments`, fill the URL template, and split the rest into body or query."""
    validate_arguments(tool, arguments)
    method = tool.method.upper()
    if method not in BODY_METHODS | QUERY_METHODS:
        raise BadUrl(f"tool {tool.name!r}: method {tool.method!r} is not one of {sorted(BODY_METHODS | QUERY_METHODS)}")
    filled, used = _fill_template(tool, arguments)
    try:
        url = httpx.URL(filled)
    except httpx.InvalidURL as exc:
        raise BadUrl(f"tool {tool.name!r}: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise BadUrl(f"tool {tool.name!r}: URL scheme {url.scheme!r} is not http or https")
    if not url.host:
        raise BadUrl(f"tool {tool.name!r}: URL has no host")
    if not _HOST.match(url.raw_host.decode("ascii", errors="replace")):
        raise BadUrl(f"tool {tool.name!r}: {url.host!r} is not a host name")
    if url.userinfo:
        raise BadUrl(f"tool {tool.name!r}: URL may not carry credentials (use a secret reference)")
    url = url.copy_with(fragment=None)
    rest = {key: value for key, value in arguments.items() if key not in used}
    if method in BODY_METHODS:
        return PlannedCall(method, url, rest)
    query = _query(rest)
    return PlannedCall(method, url.copy_merge_params(query) if query else url, None)


def build_headers(tool: Tool, idempotency_key: str, secret: SecretValue | None) -> dict[str, str]:
    """The tool's static headers with `{secret}` filled (else the secret as a bearer token), and the key."""
    uses_placeholder = any(SECRET_PLACEHOLDER in value for value in tool.headers.values())
    if uses_placeholder and secret is None:
        raise MissingSecret(f"tool {tool.name!r}: a header uses {SECRET_PLACEHOLDER} but the tool names no secret_ref")
    if secret is not None and not _HEADER_VALUE.match(secret.reveal()):
        raise MissingSecret(f"tool {tool.name!r}: secret {tool.secret_ref!r} is not a valid header value "
                            "(printable ASCII only)")
    headers: dict[str, str] = {}
    for name, value in tool.headers.items():
        if not _HEADER_NAME.match(name) or not _HEADER_VALUE.match(value):
            raise BadUrl(f"tool {tool.name!r}: header {name!r} is not a valid header (printable ASCII only)")
        if name.lower() in BRIDGE_HEADERS:
            continue
        headers[name] = value.replace(SECRET_PLACEHOLDER, secret.reveal()) if secret is not None else value
    if secret is not None and not uses_placeholder:
        headers["Authorization"] = f"Bearer {secret.reveal()}"
    headers["Idempotency-Key"] = idempotency_key
    return headers
