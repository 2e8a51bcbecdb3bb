"""An OpenAPI 3 document, read and checked before its operations become tools (`streams.openapi`): fetched
from a URL (bounded, retried on outages) or read from a file, parsed as JSON or YAML, `$ref`s to its own
components inlined (a tool's schema travels alone in its event), and its version checked."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from core.errors import TransientError
from core.retry import RetryPolicy, http_transient, raise_for_retry
from streams.addresses import SystemResolver, checked_addresses
from streams.errors import BlockedAddress, StreamsError, UnresolvedHost

METHODS = ("get", "put", "post", "delete", "patch")  # what a tool can call (topics.checks.HTTP_METHODS)
BODY_METHODS = frozenset({"put", "post", "patch"})
MAX_DOCUMENT_BYTES = 10_000_000
MAX_REF_DEPTH = 64
MAX_INLINED_NODES = 200_000  # schema nodes written out for one document, references inlined
MAX_INLINE_SECONDS = 5.0
MAX_REDIRECTS = 3
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


def redirect_refusal(origin: str, target: httpx.URL) -> str | None:
    """Why a redirect from `origin` to `target` is not followed (None: it is): only http(s), and only to the
    same host and port or to an address the bridge would reach for a company (`streams.addresses`), so a
    document's server cannot bounce the import to a loopback, private or metadata address."""
    if target.scheme not in ("http", "https"):
        return f"a redirect to {target.scheme}: is not followed"
    start = httpx.URL(origin)
    port = target.port or (443 if target.scheme == "https" else 80)
    if (target.host, port) == (start.host, start.port or (443 if start.scheme == "https" else 80)):
        return None
    try:
        asyncio.run(checked_addresses(target.host, port, (), SystemResolver()))
    except (BlockedAddress, UnresolvedHost) as exc:
        return f"a redirect to {target.host}:{port} is not followed: {exc}"
    return None


def _fetch(url: str, timeout_s: float) -> tuple[str, str]:
    def attempt(remaining_s: float) -> tuple[str, str]:
        current = httpx.URL(url)
        with httpx.Client(timeout=min(timeout_s, remaining_s), follow_redirects=False) as client:
            for _ in range(MAX_REDIRECTS + 1):
                with client.stream("GET", current, headers={"Accept": "application/json, application/yaml;q=0.9"}
                                   ) as response:
                    if response.is_redirect:
                        target = current.join(response.headers.get("location", ""))
                        refusal = redirect_refusal(url, target)
                        if refusal is not None:
                            raise OpenApiError(f"GET {url}: {refusal}")
                        current = target
                        continue
                    if response.status_code >= 400:
                        response.read()  # an error answer is small; its text goes into the message
                        raise_for_retry(response)
                        raise OpenApiError(f"GET {current} answered HTTP {response.status_code}")
                    body = bytearray()
                    for chunk in response.iter_bytes():
                        body += chunk
                        if len(body) > MAX_DOCUMENT_BYTES:
                            raise OpenApiError(f"GET {current}: the document is larger than {MAX_DOCUMENT_BYTES} bytes")
                    return (body.decode(response.encoding or "utf-8", errors="replace"),
                            response.headers.get("content-type", ""))
        raise OpenApiError(f"GET {url}: more than {MAX_REDIRECTS} redirects")

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
    a recursive schema cannot be written out whole. What inlining writes out is bounded in nodes and time:
    a few KB of references to references (each used many times) would otherwise expand to gigabytes."""

    def __init__(self, document: Mapping[str, Any], max_nodes: int = MAX_INLINED_NODES,
                 max_seconds: float = MAX_INLINE_SECONDS) -> None:
        self.document = document
        self.max_nodes = max_nodes
        self.nodes = 0
        self.deadline = time.monotonic() + max_seconds
        self.max_seconds = max_seconds

    def inline(self, node: Any, where: str, stack: tuple[str, ...] = ()) -> Any:
        self.nodes += 1
        if self.nodes > self.max_nodes:
            raise OpenApiError(f"{where}: its $refs expand to more than {self.max_nodes} schema nodes")
        if self.nodes % 1024 == 0 and time.monotonic() > self.deadline:
            raise OpenApiError(f"{where}: inlining its $refs took longer than {self.max_seconds:g} s")
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
