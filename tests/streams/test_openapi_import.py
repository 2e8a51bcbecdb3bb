"""Tools from OpenAPI 3 documents (units), from the live example API (exactly acme's trained tools, also
after a round trip through the event), and `cda tools register | import | list | remove` on the real broker."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from core.settings import Settings
from streams.call_plan import plan_call
from streams.openapi import tools_from_openapi
from streams.openapi_document import OpenApiError, load_document
from streams.tools import Tool
from topics.consumer import EventConsumer
from topics.events import Event
from topics.positions import Position
from trainer.synthetic import DEMO_TOOLS

SERVER = "https://api.shop.example/v2"
ORDER = {"type": "object", "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1}},
         "required": ["sku", "quantity"], "additionalProperties": False}


def document(paths: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"openapi": "3.1.0", "info": {"title": "shop", "version": "1"}, "servers": [{"url": SERVER}],
            "paths": paths, **extra}


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def only(doc: dict[str, Any], **kwargs: Any) -> Tool:
    tools = tools_from_openapi(doc, "shop", **kwargs)
    assert len(tools) == 1
    return tools[0]


# -- units ---------------------------------------------------------------------------------------------
def test_a_body_only_operation_keeps_its_body_schema_unchanged() -> None:
    tool = only(document({"/orders": {"post": {"operationId": "create_order", "summary": "Create an order",
                                                "requestBody": json_body(ORDER)}}}))
    assert (tool.name, tool.description, tool.method, tool.url) == ("create_order", "Create an order", "POST", f"{SERVER}/orders")
    assert tool.parameters == ORDER and list(tool.parameters["properties"]) == ["sku", "quantity"]
    assert (tool.company_id, tool.secret_ref, tool.timeout_ms) == ("shop", None, 10_000)


def test_path_and_query_parameters_merge_with_the_body() -> None:
    doc = document({"/orders/{order_id}": {
        "parameters": [{"name": "order_id", "in": "path", "required": True, "schema": {"type": "string"},
                        "description": "The order"}],
        "put": {"operationId": "replace_order", "description": "Replace an order",
                "parameters": [{"name": "notify", "in": "query", "required": True, "schema": {"type": "boolean"}},
                               {"name": "X-Trace", "in": "header", "schema": {"type": "string"}}],
                "requestBody": json_body(ORDER)},
        "get": {"operationId": "get_order", "summary": "Read an order",
                "parameters": [{"name": "fields", "in": "query", "schema": {"type": "string"}}]},
    }})
    put, get = sorted(tools_from_openapi(doc, "shop"), key=lambda t: t.method, reverse=True)
    assert put.url == f"{SERVER}/orders/{{order_id}}?notify={{notify}}" and put.description == "Replace an order"
    assert put.parameters == {
        "type": "object", "additionalProperties": False,
        "properties": {"order_id": {"type": "string", "description": "The order"}, "notify": {"type": "boolean"},
                       **ORDER["properties"]},
        "required": ["order_id", "notify", "sku", "quantity"]}
    assert list(put.parameters["properties"]) == ["order_id", "notify", "sku", "quantity"]
    assert (get.method, get.url) == ("GET", f"{SERVER}/orders/{{order_id}}")  # GET: the rest is the query string
    assert get.parameters == {"type": "object", "properties": {
        "order_id": {"type": "string", "description": "The order"}, "fields": {"type": "string"}}, "required": ["order_id"]}


def test_the_bridge_sends_imported_arguments_to_path_query_and_body() -> None:
    doc = document({"/orders/{order_id}": {
        "put": {"operationId": "replace_order", "requestBody": json_body({"type": "object", "properties": {"sku": {"type": "string"}}}),
                "parameters": [{"name": "order_id", "in": "path", "required": True, "schema": {"type": "string"}},
                               {"name": "notify", "in": "query", "required": True, "schema": {"type": "boolean"}}]},
        "get": {"operationId": "get_order", "parameters": [
            {"name": "order_id", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "fields", "in": "query", "schema": {"type": "string"}}]}}})
    get, put = tools_from_openapi(doc, "shop")  # in the order of METHODS within a path
    sent = plan_call(put, {"order_id": "o/1", "notify": True, "sku": "x"})
    assert (str(sent.url), sent.json_body) == (f"{SERVER}/orders/o%2F1?notify=true", {"sku": "x"})
    assert str(plan_call(get, {"order_id": "o1", "fields": "id"}).url) == f"{SERVER}/orders/o1?fields=id"


def test_refs_to_components_are_inlined() -> None:
    doc = document({"/orders": {"post": {
        "operationId": "create_order", "summary": "Create",
        "parameters": [{"$ref": "#/components/parameters/Tenant"}],
        "requestBody": {"$ref": "#/components/requestBodies/Order"}}}},
        components={
            "parameters": {"Tenant": {"name": "tenant", "in": "query", "required": True, "schema": {"$ref": "#/components/schemas/Id"}}},
            "requestBodies": {"Order": json_body({"$ref": "#/components/schemas/Order"})},
            "schemas": {"Id": {"type": "string", "pattern": "^[a-z]+$"},
                        "Order": {"type": "object", "properties": {
                            "sku": {"$ref": "#/components/schemas/Id"},
                            "lines": {"type": "array", "items": {"$ref": "#/components/schemas/Line"}}}},
                        "Line": {"type": "object", "properties": {"n": {"type": "integer"}}}}})
    tool = only(doc)
    assert "$ref" not in json.dumps(tool.parameters)
    line = {"type": "object", "properties": {"n": {"type": "integer"}}}
    assert tool.parameters["properties"] == {"tenant": {"type": "string", "pattern": "^[a-z]+$"},
                                             "sku": {"type": "string", "pattern": "^[a-z]+$"},
                                             "lines": {"type": "array", "items": line}}
    assert tool.url == f"{SERVER}/orders?tenant={{tenant}}"


def test_servers_relative_overridden_and_with_variables() -> None:
    op = {"/ping": {"get": {"operationId": "ping", "summary": "Ping"}}}
    assert only(document(op, servers=[{"url": "/api"}]), source_url="http://127.0.0.1:9/spec/openapi.json").url == \
        "http://127.0.0.1:9/api/ping"
    assert only(document(op), base_url="http://127.0.0.1:9/").url == "http://127.0.0.1:9/ping"
    varied = document(op, servers=[{"url": "https://{region}.shop.example", "variables": {"region": {"default": "eu"}}}])
    assert only(varied).url == "https://eu.shop.example/ping"
    assert only(varied).parameters == {"type": "object", "properties": {}}
    with pytest.raises(OpenApiError, match="relative.*--base-url"):
        only(document(op, servers=[{"url": "/api"}]))


def test_openapi_3_0_nullable_becomes_a_json_schema_type() -> None:
    body = {"type": "object", "properties": {"note": {"type": "string", "nullable": True}}}
    tool = only(document({"/n": {"post": {"operationId": "note", "requestBody": json_body(body)}}}, openapi="3.0.3"))
    assert tool.parameters["properties"]["note"] == {"type": ["string", "null"]}
    assert tool.description == "POST /n"  # no summary, no description: the call itself


@pytest.mark.parametrize(("doc", "reason"), [
    ({"swagger": "2.0", "paths": {"/a": {}}}, "Swagger 2.0 document, not OpenAPI 3"),
    ({"paths": {"/a": {}}}, "not an OpenAPI 3 document"),
    ({"openapi": "2.0", "paths": {"/a": {}}}, "not an OpenAPI 3 document"),
    (document({}), "no paths"),
    (document({"/a b": {"post": {"operationId": "a b"}}}), r"operation POST /a b: operationId 'a b' is not an identifier"),
    (document({"/a": {"post": {"summary": "x"}}}), "operation POST /a has no operationId"),
    (document({"/a": {"get": {"operationId": "a"}}, "/b": {"get": {"operationId": "a"}}}), "also the id of operation GET /a"),
    (document({"/a": {"post": {"operationId": "a", "requestBody": {"content": {"text/plain": {}}}}}}), "body is not JSON"),
    (document({"/a": {"post": {"operationId": "a", "requestBody": json_body({"type": "array"})}}}), "not an object"),
    (document({"/a/{id}": {"get": {"operationId": "a"}}}), "names id but no path parameter declares it"),
    (document({"/a": {"post": {"operationId": "a", "requestBody": json_body({"type": "object", "required": "x"})}}}),
     "not a valid JSON Schema"),
    (document({"/a": {"get": {"operationId": "a", "parameters": [{"name": "q", "in": "query",
                                                                 "schema": {"type": "string", "pattern": "(["}}]}}}),
     "not a valid JSON Schema"),
    (document({"/a": {"post": {"operationId": "a", "requestBody": json_body({"$ref": "#/components/schemas/N"})}}},
              components={"schemas": {"N": {"type": "object", "properties": {"next": {"$ref": "#/components/schemas/N"}}}}}),
     "#/components/schemas/N refers to itself"),
    (document({"/a": {"post": {"operationId": "a", "requestBody": json_body({"$ref": "#/components/schemas/Gone"})}}}),
     "points at nothing"),
    (document({"/a": {"post": {"operationId": "a", "requestBody": json_body({"$ref": "other.json#/X"})}}}),
     "only references inside the document"),
    (document({"/a": {"post": {"operationId": "a", "parameters": [{"name": "q", "in": "query", "schema": {}}]}}}),
     "optional query parameter"),
    (document({"/a/{a-b}": {"get": {"operationId": "a", "parameters": [{"name": "a-b", "in": "path", "schema": {}}]}}}),
     "a-b cannot be URL placeholders"),
])
def test_what_cannot_become_tools_is_refused_naming_the_reason(doc: dict[str, Any], reason: str) -> None:
    with pytest.raises(OpenApiError, match=reason.replace("(", r"\(")):
        tools_from_openapi(doc, "shop")


def test_documents_load_from_files(tmp_path: Path) -> None:
    good = tmp_path / "spec.json"
    good.write_text(json.dumps(document({"/p": {"get": {"operationId": "p"}}})))
    assert load_document(str(good))[0]["paths"] == {"/p": {"get": {"operationId": "p"}}}
    bad = tmp_path / "notes.txt"
    bad.write_text("hello: [")
    with pytest.raises(OpenApiError, match="not JSON"):
        load_document(str(bad))
    with pytest.raises(OpenApiError, match="cannot read"):
        load_document(str(tmp_path / "missing.json"))
    listed = tmp_path / "list.json"
    listed.write_text("[1]")
    with pytest.raises(OpenApiError, match="expected an object, got list"):
        load_document(str(listed))


def test_importing_the_live_example_api_reproduces_acmes_trained_tools(example_api: str) -> None:
    doc, source = load_document(f"{example_api}/openapi.json")
    tools = tools_from_openapi(doc, "acme", source_url=source, secret_ref="env:ACME_TOKEN")
    assert [t.spec() for t in tools] == list(DEMO_TOOLS)
    assert [(t.method, t.url, t.secret_ref) for t in tools] == [("POST", f"{example_api}/{t.name}", "env:ACME_TOKEN")
                                                               for t in DEMO_TOOLS]
    # what the agents fold from the topic renders the prompt the adapter was trained on
    for tool, trained in zip(tools, DEMO_TOOLS, strict=True):
        back = Tool.from_event(Event.new("tool_registered", "acme", **tool.to_fields()))
        assert back.spec().signature() == trained.signature() and back.spec() == trained


def test_a_url_that_answers_an_error_is_refused(example_api: str) -> None:
    with pytest.raises(OpenApiError, match="HTTP 404"):
        load_document(f"{example_api}/nothing.json")


# -- the command line on the real broker ---------------------------------------------------------------------
Cli = Callable[..., Result]


def tool_events(settings: Settings) -> list[Event]:
    with EventConsumer(settings, f"t-{uuid.uuid4()}") as consumer:
        consumer.assign("company_tools", Position.beginning(), until_end=True)
        return [r.event for r in consumer]


def fails_clearly(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


@pytest.mark.kafka
def test_import_from_the_example_api_then_list_shows_acmes_tools(cli: Cli, example_api: str, settings: Settings) -> None:
    dry = cli("tools", "import", "--company", "acme", "--openapi", f"{example_api}/openapi.json", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "nothing produced" in dry.stderr and tool_events(settings) == []
    imported = cli("tools", "import", "--company", "acme", "--openapi", f"{example_api}/openapi.json",
                   "--secret-ref", "env:ACME_TOKEN")
    assert imported.exit_code == 0, imported.output
    assert "imported 3 tool(s) for acme" in imported.stderr
    listed = cli("tools", "list", "--company", "acme")
    assert listed.exit_code == 0, listed.output
    for tool in DEMO_TOOLS:
        assert tool.name in listed.stdout and f"{example_api}/{tool.name}" in listed.stdout
    assert "(ref:string, cents:integer)" in listed.stdout
    as_json = [json.loads(line) for line in cli("tools", "list", "--company", "acme", "--json").stdout.splitlines()]
    assert sorted((t["tool_name"], t["description"], t["parameters_schema_json"]) for t in as_json) == \
        sorted((t.name, t.description, json.dumps(t.parameters)) for t in DEMO_TOOLS)
    assert cli("tools", "list", "--company", "other").stderr.strip() == "0 tool(s) for other"  # its own tools only


@pytest.mark.kafka
def test_register_from_a_file_and_remove(cli: Cli, settings: Settings, tmp_path: Path, example_api: str) -> None:
    spec = tmp_path / "tools.json"
    spec.write_text(json.dumps([
        {"name": "zx_post", "description": "Acme endpoint 7", "parameters": dict(DEMO_TOOLS[0].parameters),
         "url": f"{example_api}/zx_post", "headers": {"X-Team": "billing"}, "timeout_ms": 2000},
        {"name": "lookup", "description": "Find a customer", "parameters": {"type": "object"}, "method": "get",
         "url": "https://crm.example/customers/{id}", "secret_ref": "file:/run/secrets/crm"}]))
    registered = cli("tools", "register", "--company", "acme", "-f", str(spec))
    assert registered.exit_code == 0, registered.output
    tools = {t.name: t for t in (Tool.from_event(e) for e in tool_events(settings))}
    assert tools["zx_post"].spec() == DEMO_TOOLS[0] and dict(tools["zx_post"].headers) == {"X-Team": "billing"}
    assert (tools["lookup"].method, tools["lookup"].secret_ref, tools["lookup"].timeout_ms) == ("GET", "file:/run/secrets/crm", 10_000)
    removed = cli("tools", "remove", "lookup", "--company", "acme", "--reason", "retired")
    assert removed.exit_code == 0, removed.output
    listed = cli("tools", "list", "--company", "acme")
    assert "zx_post" in listed.stdout and "lookup" not in listed.stdout
    assert "no tool named 'lookup'" in fails_clearly(cli("tools", "remove", "lookup", "--company", "acme"))


@pytest.mark.kafka
@pytest.mark.parametrize(("content", "reason"), [
    ("not json", "not JSON"),
    (json.dumps({"name": "a"}), "expected a JSON list of tools"),
    (json.dumps([{"name": "a", "description": "d", "parameters": {"type": 5}, "url": "https://x.example/a"}]),
     "parameters_schema_json: not a valid JSON Schema"),
    (json.dumps([{"name": "a", "description": "d", "parameters": {"type": "string", "pattern": "(["},
                  "url": "https://x.example/a"}]), "not a valid JSON Schema"),
    (json.dumps([{"name": "ok", "description": "d", "parameters": {}, "url": "https://x.example/a"},
                 {"name": "a b", "description": "d", "parameters": {}, "url": "https://x.example/a"}]), "tool_name"),
    (json.dumps([{"name": "a", "description": "d", "parameters": {}, "url": "ftp://x.example/a"}]), "url"),
    (json.dumps([{"name": "a", "description": "d", "parameters": {}, "url": "https://x.example/a",
                  "secret_ref": "hunter2"}]), "secret_ref"),
    (json.dumps([{"name": "a", "description": "d", "parameters": {}, "url": "https://x.example/a", "extra": 1}]),
     "unknown field"),
])
def test_a_bad_tools_file_registers_nothing(cli: Cli, settings: Settings, tmp_path: Path, content: str, reason: str) -> None:
    spec = tmp_path / "tools.json"
    spec.write_text(content)
    assert reason in fails_clearly(cli("tools", "register", "--company", "acme", "-f", str(spec)))
    assert tool_events(settings) == []


@pytest.mark.kafka
@pytest.mark.parametrize(("content", "reason"), [
    ("openapi: [", "not JSON"),
    (json.dumps({"swagger": "2.0", "paths": {"/a": {"get": {"operationId": "a"}}}}), "Swagger 2.0"),
    (json.dumps(document({"/a": {"post": {"operationId": "a", "requestBody": json_body({"properties": {"b": {"type": 5}}})}}})),
     "not a valid JSON Schema"),
    (json.dumps(document({"/a": {"post": {"operationId": "a"}}, "/b": {"post": {"summary": "b"}}})), "has no operationId"),
])
def test_a_bad_openapi_document_imports_nothing(cli: Cli, settings: Settings, tmp_path: Path, content: str,
                                               reason: str) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(content)
    assert reason in fails_clearly(cli("tools", "import", "--company", "acme", "--openapi", str(spec)))
    assert tool_events(settings) == []
