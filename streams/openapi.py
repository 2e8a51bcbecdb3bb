"""Onboarding a company's API from its OpenAPI 3 document: each operation becomes one `Tool`.

operationId -> the tool's name (an identifier: it is a record key and the `const` of the call schema);
summary (else description) -> what the model reads; path and query parameters and the JSON request body ->
one arguments schema; server URL + path (`{param}` templates kept) + method -> the call. `$ref`s to the
document's components are inlined, because a tool's schema travels alone in its event. For an operation
whose only input is its JSON body, the arguments schema is that body schema unchanged — the prompt renders
its properties in order, so an imported tool reads exactly as the one an adapter was trained on.

How arguments reach the API (the bridge's convention): names in the URL template fill it; the rest go as
the query string for GET and DELETE and as the JSON body otherwise. A body method's query parameters are
therefore written into the URL template (`?dry_run={dry_run}`), which only works for required ones.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import jsonschema

from core.errors import TransientError
from core.identifiers import is_identifier
from core.retry import RetryPolicy, http_transient, raise_for_retry
from streams.errors import StreamsError
from streams.tools import Tool

METHODS = ("get", "put", "post", "delete", "patch")  # what a tool can call (topics.checks.HTTP_METHODS)
BODY_METHODS = frozenset({"put", "post", "patch"})
MAX_DOCUMENT_BYTES = 10_000_000
MAX_REF_DEPTH = 64
_TEMPLATE = re.compile(r"\{([^{}]+)\}")
_PLACEHOLDER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # what the bridge fills (streams/call_plan.py)


class OpenApiError(StreamsError):
    """Not an OpenAPI 3 document, or an operation that cannot become a tool; the message names which and why."""


class OpenApiUnavailable(OpenApiError, TransientError):
    """The document's URL did not answer (or answered 429/5xx) within the bound."""


# -- loading ---------------------------------------------------------------------------------------
def load_document(source: str, timeout_s: float = 10.0) -> tuple[dict[str, Any], str | None]:
    """The document at a file path or an http(s) URL, and the URL it came from (relative servers resolve
    against it); JSON, or YAML when PyYAML is installed."""
    if urlsplit(source).scheme in ("http", "https"):
        text, content_type = _fetch(source, timeout_s)
        return _parse(text, source, yaml_hint="yaml" in content_type), source
    path = Path(source).expanduser()
    try:
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            raise OpenApiError(f"{source}: larger than {MAX_DOCUMENT_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OpenApiError(f"{source}: cannot read it ({exc})") from None
    return _parse(text, source, yaml_hint=path.suffix in (".yaml", ".yml")), None


def _fetch(url: str, timeout_s: float) -> tuple[str, str]:
    def attempt(remaining_s: float) -> tuple[str, str]:
        with httpx.Client(timeout=min(timeout_s, remaining_s), follow_redirects=True, max_redirects=3) as client:
            with client.stream("GET", url, headers={"Accept": "application/json, application/yaml;q=0.9"}) as response:
                if response.status_code >= 400:
                    response.read()  # an error answer is small; its text goes into the message
                    raise_for_retry(response)
                    raise OpenApiError(f"GET {url} answered HTTP {response.status_code}")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise OpenApiError(f"GET {url}: the document is larger than {MAX_DOCUMENT_BYTES} bytes")
                return body.decode(response.encoding or "utf-8", errors="replace"), response.headers.get("content-type", "")

    try:
        return RetryPolicy(attempts=3, deadline_s=timeout_s, backoff_s=0.2).call(attempt, retry_if=http_transient(True))
    except (httpx.HTTPError, TransientError) as exc:
        raise OpenApiUnavailable(f"GET {url} failed: {exc}") from exc


def _parse(text: str, source: str, yaml_hint: bool) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        if not yaml_hint:
            raise OpenApiError(f"{source}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
        value = _parse_yaml(text, source)
    if not isinstance(value, dict):
        raise OpenApiError(f"{source}: not an OpenAPI document (expected an object, got {type(value).__name__})")
    return value


def _parse_yaml(text: str, source: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise OpenApiError(f"{source}: a YAML document needs PyYAML; give the JSON form") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise OpenApiError(f"{source}: not YAML ({exc})") from None


# -- $ref --------------------------------------------------------------------------------------------
class _Refs:
    """Inlines local `$ref`s (`#/components/...`); a reference reached again inside itself is refused, since
    a recursive schema cannot be written out whole."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document

    def inline(self, node: Any, where: str, stack: tuple[str, ...] = ()) -> Any:
        if isinstance(node, list):
            return [self.inline(item, where, stack) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in stack:
                raise OpenApiError(f"{where}: {ref} refers to itself ({' -> '.join((*stack, ref))}); "
                                   "a recursive schema cannot be a tool's arguments")
            if len(stack) >= MAX_REF_DEPTH:
                raise OpenApiError(f"{where}: $refs nested deeper than {MAX_REF_DEPTH}")
            target = self.inline(self._target(ref, where), where, (*stack, ref))
            siblings = {k: self.inline(v, where, stack) for k, v in node.items() if k != "$ref"}
            return {**target, **siblings} if isinstance(target, dict) else target
        return {key: self.inline(value, where, stack) for key, value in node.items()}

    def _target(self, ref: str, where: str) -> Any:
        if not ref.startswith("#/"):
            raise OpenApiError(f"{where}: only references inside the document are supported, not {ref!r}")
        node: Any = self.document
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                raise OpenApiError(f"{where}: {ref} points at nothing")
            node = node[part]
        return copy.deepcopy(node)


# -- operations -> tools -----------------------------------------------------------------------------
def check_document(document: Mapping[str, Any]) -> str:
    """The OpenAPI version when `document` is an OpenAPI 3 document with paths, else `OpenApiError` saying why."""
    if "swagger" in document:
        raise OpenApiError(f"a Swagger {document.get('swagger')} document, not OpenAPI 3: convert it first "
                           "(e.g. with swagger2openapi)")
    version = document.get("openapi")
    if not isinstance(version, str) or not version.startswith("3."):
        raise OpenApiError(f"not an OpenAPI 3 document (its 'openapi' field is {version!r}, expected 3.x)")
    paths = document.get("paths")
    if not isinstance(paths, dict) or not paths:
        raise OpenApiError("the OpenAPI document has no paths: there is nothing to call")
    return version


def tools_from_openapi(document: Mapping[str, Any], company_id: str, *, source_url: str | None = None,
                       base_url: str | None = None, secret_ref: str | None = None,
                       timeout_ms: int = 10_000) -> list[Tool]:
    """One `Tool` of `company_id` per operation of `document` (paths in document order, then by method).

    `base_url` replaces the document's servers; otherwise a relative server URL resolves against
    `source_url` (where the document was fetched from)."""
    version = check_document(document)
    refs = _Refs(document)
    tools: list[Tool] = []
    seen: dict[str, str] = {}
    for path, item in document["paths"].items():
        if not isinstance(item, dict):
            raise OpenApiError(f"path {path}: expected an object of operations")
        item = refs.inline(item, f"path {path}")
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            where = f"operation {method.upper()} {path}"
            if not isinstance(operation, dict):
                raise OpenApiError(f"{where}: expected an object")
            name = _name(operation, where)
            if name in seen:
                raise OpenApiError(f"{where}: operationId {name!r} is also the id of {seen[name]}")
            seen[name] = where
            server = base_url or _server(document, item, operation, source_url, where)
            parameters, url = _arguments(item, operation, method, path, where, nullable=version.startswith("3.0"))
            description = str(operation.get("summary") or operation.get("description") or f"{method.upper()} {path}")
            tools.append(Tool(company_id=company_id, name=name, description=description.strip(), parameters=parameters,
                              method=method.upper(), url=server.rstrip("/") + url, secret_ref=secret_ref,
                              timeout_ms=timeout_ms))
    return tools


def _name(operation: Mapping[str, Any], where: str) -> str:
    name = operation.get("operationId")
    if name is None:
        raise OpenApiError(f"{where} has no operationId: a tool needs a name")
    if not is_identifier(name):
        raise OpenApiError(f"{where}: operationId {name!r} is not an identifier (letters, digits, '_', '.', '-'; "
                           "a letter or digit first; at most 128 characters)")
    return str(name)


def _server(document: Mapping[str, Any], item: Mapping[str, Any], operation: Mapping[str, Any],
            source_url: str | None, where: str) -> str:
    """The nearest `servers` entry (operation, path, document), variables set to their defaults."""
    servers = operation.get("servers") or item.get("servers") or document.get("servers") or [{"url": "/"}]
    first = servers[0] if isinstance(servers, list) and servers and isinstance(servers[0], dict) else {}
    url = str(first.get("url", ""))
    for variable, spec in (first.get("variables") or {}).items():
        url = url.replace("{" + variable + "}", str((spec or {}).get("default", "")))
    if urlsplit(url).scheme in ("http", "https"):
        return url
    if source_url is None:
        raise OpenApiError(f"{where}: the server URL {url!r} is relative and the document was not fetched from a "
                           "URL; give the API's base URL (--base-url)")
    return urljoin(source_url, url)


def _arguments(item: Mapping[str, Any], operation: Mapping[str, Any], method: str, path: str, where: str,
               nullable: bool) -> tuple[dict[str, Any], str]:
    """(arguments schema, path with its templates) of one operation."""
    declared = {(p.get("in"), p.get("name")): p for p in [*(item.get("parameters") or ()), *(operation.get("parameters") or ())]
                if isinstance(p, dict)}  # an operation's parameter replaces the path's of the same name and place
    params = [p for (place, _), p in declared.items() if place in ("path", "query")]  # headers, cookies: static
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in params:
        name = str(param.get("name"))
        schema = param.get("schema") or _media_schema(param.get("content")) or {}
        if param.get("description") and isinstance(schema, dict) and "description" not in schema:
            schema = {**schema, "description": param["description"]}
        properties[name] = schema
        if param.get("in") == "path" or param.get("required"):
            required.append(name)
    template = path
    missing = [n for n in _TEMPLATE.findall(path) if ("path", n) not in declared]
    if missing:
        raise OpenApiError(f"{where}: the path template names {', '.join(missing)} but no path parameter declares it")
    query = [str(p.get("name")) for p in params if p.get("in") == "query"]
    if method in BODY_METHODS and query:
        optional = [n for n in query if n not in required]
        if optional:
            raise OpenApiError(f"{where}: optional query parameter(s) {', '.join(optional)} of a {method.upper()} "
                               "operation cannot be sent (its other arguments are the JSON body)")
        template += "?" + "&".join(f"{n}={{{n}}}" for n in query)
    unfillable = [n for n in _TEMPLATE.findall(template) if not _PLACEHOLDER.fullmatch(n)]
    if unfillable:
        raise OpenApiError(f"{where}: parameter(s) {', '.join(unfillable)} cannot be URL placeholders "
                           "(a letter or '_' first, then letters, digits and '_')")
    body = _body_schema(operation, where)
    if not properties:
        schema = body if body is not None else {"type": "object", "properties": {}}
    else:
        schema = _merge(properties, required, body, where)
    if nullable:
        schema = _nullable_to_type(schema)
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise OpenApiError(f"{where}: its arguments are not a valid JSON Schema: {exc.message}") from None
    return schema, template


def _media_schema(content: Any) -> dict[str, Any] | None:
    """The schema of the JSON media type of a `content` map (`application/json` or any `+json`)."""
    if not isinstance(content, dict):
        return None
    for media, spec in content.items():
        kind = media.split(";")[0].strip().lower()
        if (kind == "application/json" or kind.endswith("+json")) and isinstance(spec, dict):
            schema = spec.get("schema")
            return schema if isinstance(schema, dict) else {}
    return None


def _body_schema(operation: Mapping[str, Any], where: str) -> dict[str, Any] | None:
    body = operation.get("requestBody")
    if body is None:
        return None
    schema = _media_schema(body.get("content") if isinstance(body, dict) else None)
    if schema is None:
        raise OpenApiError(f"{where}: its request body is not JSON (a tool's arguments are one JSON object)")
    if schema.get("type", "object") != "object" and "properties" not in schema:
        raise OpenApiError(f"{where}: its request body is a {schema.get('type')}, not an object "
                           "(a tool's arguments are one JSON object)")
    return schema


def _merge(properties: dict[str, Any], required: list[str], body: dict[str, Any] | None, where: str) -> dict[str, Any]:
    """Parameters first, then the body's properties; the body's other keywords (additionalProperties...) kept."""
    body = body or {}
    body_props = body.get("properties") or {}
    clash = sorted(set(properties) & set(body_props))
    if clash:
        raise OpenApiError(f"{where}: {', '.join(clash)} is both a parameter and a body property")
    merged: dict[str, Any] = {"type": "object", **{k: v for k, v in body.items() if k not in ("properties", "required")}}
    merged["properties"] = {**properties, **body_props}
    all_required = [*required, *(n for n in body.get("required") or () if n not in required)]
    if all_required:
        merged["required"] = all_required
    return merged


def _nullable_to_type(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` as JSON Schema's `type: [T, "null"]` (3.1 documents already say it so)."""
    if isinstance(node, list):
        return [_nullable_to_type(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable_to_type(v) for k, v in node.items() if not (k == "nullable" and isinstance(v, bool))}
    if node.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out
