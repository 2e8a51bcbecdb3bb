"""Schemas resolve nothing remote, in every place that validates, and imports are bounded: a loopback listener
stands where a company's `$ref` or a document's redirect points, and must never be asked."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from core.json_schemas import RemoteReference, check_local_refs, errors, is_valid
from core.prompts import ToolSpec
from inference.tool_calls import check_schema, parse_tool_call
from streams.call_plan import validate_arguments
from streams.errors import InvalidArguments
from streams.openapi import tools_from_openapi
from streams.openapi_document import OpenApiError, load_document
from streams.tools import Tool
from topics.errors import EventValidationError
from topics.events import Event
from trainer.dataset import BadData, build_dataset
from trainer.evaluate import score
from trainer.examples import Example


class Listener:
    """A loopback HTTP server that records every request; `redirect_to` makes it answer 302 there."""

    def __init__(self, redirect_to: str | None = None) -> None:
        self.hits: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                outer.hits.append(self.path)
                if redirect_to:
                    self.send_response(302)
                    self.send_header("Location", redirect_to)
                    self.end_headers()
                    return
                body = json.dumps({"type": "string"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def remote(url: str) -> dict[str, Any]:
    return {"type": "object", "properties": {"ref": {"$ref": f"{url}/schema.json"}}, "required": ["ref"]}


def test_the_factory_resolves_local_refs_and_refuses_remote_ones(listener: Listener) -> None:
    local = {"type": "object", "properties": {"n": {"$ref": "#/$defs/n"}}, "$defs": {"n": {"type": "integer"}}}
    assert is_valid(local, {"n": 1}) and not is_valid(local, {"n": "x"})
    [error] = errors(remote(listener.url), {"ref": "a"})
    assert "does not hold" in error.message
    with pytest.raises(RemoteReference, match=r"parameters: properties\.ref\.\$ref must point inside the schema"):
        check_local_refs(remote(listener.url), "parameters")
    assert listener.hits == []


def test_registration_refuses_a_remote_ref_naming_the_field(listener: Listener) -> None:
    with pytest.raises(EventValidationError) as refused:
        Event.new("tool_registered", "acme", tool_name="zx_post", description="post",
                  parameters_schema_json=json.dumps(remote(listener.url)), method="POST",
                  url="https://billing.example/post", headers={}, timeout_ms=1000)
    assert refused.value.path == "parameters_schema_json.properties.ref.$ref"
    with pytest.raises(EventValidationError, match="file:///dev/zero"):  # a file is another document too
        Event.new("tool_registered", "acme", tool_name="zx_post", description="post",
                  parameters_schema_json=json.dumps({"$ref": "file:///dev/zero"}), method="POST",
                  url="https://billing.example/post", headers={}, timeout_ms=1000)
    assert listener.hits == []


def test_every_place_that_validates_fetches_nothing(listener: Listener) -> None:
    """A tool already on the log with a remote `$ref` (registered before the check existed): the bridge's
    argument check, the trainer's dataset and gate, and the gateway's output parsing call its arguments
    invalid; none of them asks the listener."""
    schema = remote(listener.url)
    tool = Tool("acme", "zx_post", "post", schema, "POST", "https://billing.example/post")
    with pytest.raises(InvalidArguments, match="does not hold"):
        validate_arguments(tool, {"ref": "A-1"})
    spec = ToolSpec("zx_post", "post", schema)
    examples = [Example(f"Bill {i}", json.dumps({"c": i}), "zx_post", {"ref": f"A-{i}"}) for i in range(12)]
    with pytest.raises(BadData) as bad:
        build_dataset(examples, [spec], min_train=1, min_eval=1)
    assert bad.value.counts["arguments_fail_tool_schema"] == 12
    assert score(("zx_post", {"ref": "A-1"}), examples[0], [spec]) == (False, False)
    assert not parse_tool_call('{"ref": "A-1"}', schema).valid
    with pytest.raises(RemoteReference):
        check_schema(schema)  # the gateway's check of a guided-JSON schema
    assert listener.hits == []


def test_an_openapi_import_refuses_remote_refs_and_expansion_bombs(listener: Listener) -> None:
    def document(schemas: dict[str, Any], body: str) -> dict[str, Any]:
        return {"openapi": "3.0.3", "servers": [{"url": "https://billing.example"}], "components": {"schemas": schemas},
                "paths": {"/post": {"post": {"operationId": "post", "requestBody": {"content": {
                    "application/json": {"schema": {"$ref": body}}}}, "responses": {"200": {"description": "ok"}}}}}}

    with pytest.raises(OpenApiError, match="only references inside the document"):
        tools_from_openapi(document({}, f"{listener.url}/schema.json"), "acme")
    # each level refers to the one below ten times: 10^9 nodes from a 2 KB document
    bomb = {f"L{i}": {"type": "object", "properties": {f"p{j}": {"$ref": f"#/components/schemas/L{i + 1}"}
                                                       for j in range(10)}} for i in range(9)}
    bomb["L9"] = {"type": "string"}
    started = time.monotonic()
    with pytest.raises(OpenApiError, match="expand to more than"):
        tools_from_openapi(document(bomb, "#/components/schemas/L0"), "acme")
    assert time.monotonic() - started < 30  # refused, not computed (a generous bound: a shared machine)
    assert listener.hits == []


def test_a_documents_redirect_to_another_local_address_is_not_followed(listener: Listener) -> None:
    bouncer = Listener(redirect_to=f"{listener.url}/openapi.json")
    try:
        with pytest.raises(OpenApiError, match="redirect to 127.0.0.1"):
            load_document(f"{bouncer.url}/openapi.json", timeout_s=5)
        assert bouncer.hits == ["/openapi.json"] and listener.hits == []
    finally:
        bouncer.close()
    same = Listener(redirect_to="/again")  # within the same host and port: followed, up to the bound
    try:
        with pytest.raises(OpenApiError, match="more than 3 redirects"):
            load_document(f"{same.url}/openapi.json", timeout_s=5)
        assert len(same.hits) == 4
    finally:
        same.close()
