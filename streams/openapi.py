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

from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import jsonschema

from core.identifiers import is_identifier
from core.json_schemas import RemoteReference, check_local_refs, check_schema
from streams.openapi_document import (
    _PLACEHOLDER,
    _TEMPLATE,
    BODY_METHODS,
    METHODS,
    OpenApiError,
    _Refs,
    check_document,
)
from streams.tools import Tool


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
        check_schema(schema)
        check_local_refs(schema, f"{where}: its arguments")
    except jsonschema.SchemaError as exc:
        raise OpenApiError(f"{where}: its arguments are not a valid JSON Schema: {exc.message}") from None
    except RemoteReference as exc:
        raise OpenApiError(str(exc)) from None
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
