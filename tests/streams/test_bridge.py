"""The API bridge against a real HTTP server on 127.0.0.1 (started by the test), and, for refusals, against
a transport that fails the test on any connection attempt. No traffic leaves loopback: private and
metadata addresses are only ever "resolved" by a fake resolver, and refused before any connection."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from core.settings import Settings
from streams.addresses import IPAddress
from streams.agent_settings import AgentSettings
from streams.bridge import ApiBridge, CallOutcome
from streams.errors import UnresolvedHost
from streams.secrets import EnvSecrets, FileSecrets, SecretResolver
from streams.tools import Tool

SECRET = "sk-live-7f3a9c1e-do-not-leak"
KEY = "job-1/unit-0/step-0"
INVOICE_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["invoice_id", "amount"],
                  "properties": {"invoice_id": {"type": "string"}, "amount": {"type": "number", "minimum": 0},
                                 "currency": {"type": "string", "enum": ["EUR", "USD"]}}}


@dataclass
class Seen:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: Any


@dataclass
class ToyApi:
    """What the loopback server saw and how it behaves; handlers read and write it under `lock`."""

    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(default_factory=threading.Condition)
    release: threading.Event = field(default_factory=threading.Event)
    in_flight: int = 0
    max_in_flight: int = 0
    gate_size: int = 0
    gate_total: int = 0
    gate_arrived: int = 0

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def keys(self, path_prefix: str = "/") -> list[str]:
        with self.lock:
            return [s.headers.get("idempotency-key", "") for s in self.seen if s.path.startswith(path_prefix)]


class Handler(BaseHTTPRequestHandler):
    """Routes: /echo, /status/<code>, /flaky/<n>/<code> (n failures, then 200), /slow, /big/<n>,
    /stream/<n> (no Content-Length), /gate (counts concurrent requests), /redirect."""

    server: ThreadingHTTPServer
    api: ToyApi

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test server
        pass

    def _record(self) -> Seen:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        seen = Seen(self.command, parts.path, parse_qsl(parts.query), {k.lower(): v for k, v in self.headers.items()},
                    json.loads(raw) if raw else None)
        with self.api.lock:
            self.api.seen.append(seen)
        return seen

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _handle(self) -> None:
        seen = self._record()
        parts = seen.path.strip("/").split("/")
        route = parts[0]
        if route == "echo":
            self._send(200, {"method": seen.method, "path": seen.path, "query": seen.query, "body": seen.body,
                             "headers": seen.headers})
        elif route == "status":
            self._send(int(parts[1]), {"error": "as asked", "you_sent": seen.headers.get("authorization")})
        elif route == "flaky":
            failures, code = int(parts[1]), int(parts[2])
            with self.api.lock:
                count = sum(1 for s in self.api.seen if s.path == seen.path)
            self._send(code if count <= failures else 200, {"try": count})
        elif route == "slow":
            self.api.release.wait(30)
            self._send(200, {"late": True})
        elif route == "big":
            self._send(200, b"x" * int(parts[1]))
        elif route == "stream":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            try:
                for _ in range(int(parts[1]) // 1000):
                    self.wfile.write(b"y" * 1000)
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif route == "gate":
            self._gate()
        elif route == "redirect":
            self._send(302, {}, {"Location": "http://169.254.169.254/latest/meta-data/"})
        else:
            self._send(404, {"error": "no such route"})

    def _gate(self) -> None:
        """Hold each request until `gate_size` are in flight (so the limit is reached) or every expected
        request has arrived, then a little longer so that a request over the limit, if the bridge let one
        through, is counted."""
        api = self.api
        with api.changed:
            api.in_flight += 1
            api.gate_arrived += 1
            api.max_in_flight = max(api.max_in_flight, api.in_flight)
            api.changed.notify_all()
            api.changed.wait_for(lambda: api.in_flight >= api.gate_size or api.gate_arrived >= api.gate_total, timeout=10)
            api.changed.wait_for(lambda: api.in_flight > api.gate_size, timeout=0.3)
            api.in_flight -= 1
            api.changed.notify_all()
        self._send(200, {"gated": True})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


@pytest.fixture()
def toy_api() -> Iterator[ToyApi]:
    api = ToyApi()
    handler = type("BoundHandler", (Handler,), {"api": api})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    api.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="toy-api", daemon=True)
    thread.start()
    try:
        yield api
    finally:
        api.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


class FakeResolver:
    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        if host not in self.table:
            raise UnresolvedHost(f"host {host!r} did not resolve")
        return [ipaddress.ip_address(a) for a in self.table[host]]


class NoConnections(httpx.AsyncBaseTransport):
    """A transport for refusals: any request that reaches it fails the test."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        raise AssertionError(f"a connection was attempted to {request.url}")


class Recording(httpx.AsyncBaseTransport):
    """A transport that answers 200 without any network, recording what would have been sent."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json={"ok": True})


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"home": tmp_path, "bridge_backoff_s": 0.01, "bridge_deadline_s": 10.0, "bridge_attempts": 3}
    return Settings(**(values | overrides))


def tool(url: str, method: str = "POST", schema: dict[str, Any] | None = None, **extra: Any) -> Tool:
    return Tool(company_id="acme", name="create_invoice", description="Create an invoice",
                parameters=schema if schema is not None else INVOICE_SCHEMA, method=method, url=url, **extra)


TOOL_HOST = frozenset({"<the tool's own host:port>"})  # agent()'s default: `call` allows the tool's host and port


def own_host(the_tool: Tool) -> frozenset[str]:
    """The tool's own host:port (allow-list entries name a port)."""
    url = httpx.URL(the_tool.url)
    return frozenset({f"{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"})


def agent(**extra: Any) -> AgentSettings:
    values: dict[str, Any] = {"company_id": "acme", "allowed_hosts": TOOL_HOST}
    return AgentSettings(**(values | extra))


def call(bridge_settings: Settings, the_tool: Tool, arguments: dict[str, Any], the_agent: AgentSettings | None = None,
         key: str = KEY, **bridge_args: Any) -> CallOutcome:
    async def run() -> CallOutcome:
        bridge = ApiBridge(bridge_settings, **bridge_args)
        try:
            chosen = the_agent or agent()
            if chosen.allowed_hosts == TOOL_HOST:
                chosen = dataclasses.replace(chosen, allowed_hosts=own_host(the_tool))
            if chosen.allowed_secrets and not chosen.secret_hosts:  # its secrets bound to the tool's own host
                chosen = dataclasses.replace(chosen, secret_hosts={r: own_host(the_tool) for r in chosen.allowed_secrets})
            return await bridge.call(the_tool, arguments, key, chosen)
        finally:
            await bridge.aclose()

    return asyncio.run(run())


ARGS = {"invoice_id": "INV-1", "amount": 12.5, "currency": "EUR"}


def test_post_sends_arguments_as_json_with_the_idempotency_key(toy_api: ToyApi, tmp_path: Path) -> None:
    outcome = call(settings(tmp_path), tool(toy_api.url("/echo"), headers={"X-Client": "cda"}), ARGS)
    assert outcome.ok and outcome.status_code == 200 and outcome.error == "" and outcome.error_kind == ""
    assert outcome.attempts == 1
    sent = toy_api.seen[0]
    assert sent.method == "POST" and sent.body == ARGS
    assert sent.headers["idempotency-key"] == KEY and sent.headers["x-client"] == "cda"
    assert sent.headers["host"] == f"127.0.0.1:{toy_api.port}"
    assert json.loads(outcome.result_json)["body"] == ARGS


def test_url_template_is_filled_quoted_and_the_rest_is_the_query_for_get(toy_api: ToyApi, tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"invoice_id": {"type": "string"}, "expand": {"type": "boolean"},
                                               "tags": {"type": "array", "items": {"type": "string"}}}}
    the_tool = tool(toy_api.url("/echo/invoices/{invoice_id}?v=2"), method="GET", schema=schema)
    outcome = call(settings(tmp_path), the_tool, {"invoice_id": "a/../b c", "expand": True, "tags": ["x", "y"]})
    assert outcome.ok, outcome
    sent = toy_api.seen[0]
    assert sent.method == "GET" and sent.body is None
    assert sent.path == "/echo/invoices/a%2F..%2Fb%20c"
    assert sent.query == [("v", "2"), ("expand", "true"), ("tags", "x"), ("tags", "y")]


@pytest.mark.parametrize(("arguments", "field"), [
    ({"invoice_id": "INV-1"}, "'amount' is a required property"),
    ({"invoice_id": "INV-1", "amount": "12"}, "arguments.amount"),
    ({"invoice_id": "INV-1", "amount": -1}, "arguments.amount"),
    ({"invoice_id": "INV-1", "amount": 1, "currency": "GBP"}, "arguments.currency"),
    ({"invoice_id": "INV-1", "amount": 1, "drop_table": True}, "drop_table"),
])
def test_arguments_failing_the_schema_are_never_sent(toy_api: ToyApi, tmp_path: Path, arguments: dict[str, Any],
                                                     field: str) -> None:
    outcome = call(settings(tmp_path), tool(toy_api.url("/echo")), arguments)
    assert not outcome.ok and outcome.error_kind == "invalid_arguments" and not outcome.retryable
    assert field in outcome.error and outcome.attempts == 0 and outcome.status_code is None
    assert toy_api.seen == []


def test_a_4xx_fails_at_once_without_retry(toy_api: ToyApi, tmp_path: Path) -> None:
    outcome = call(settings(tmp_path), tool(toy_api.url("/status/422")), ARGS)
    assert not outcome.ok and outcome.status_code == 422 and outcome.error_kind == "client_error"
    assert not outcome.retryable and outcome.attempts == 1 and "HTTP 422" in outcome.error
    assert json.loads(outcome.result_json)["error"] == "as asked"
    assert len(toy_api.seen) == 1


@pytest.mark.parametrize("code", [500, 502, 503, 429])
def test_5xx_and_429_are_retried_with_the_same_idempotency_key(toy_api: ToyApi, tmp_path: Path, code: int) -> None:
    outcome = call(settings(tmp_path), tool(toy_api.url(f"/flaky/2/{code}")), ARGS)
    assert outcome.ok and outcome.attempts == 3, outcome
    assert json.loads(outcome.result_json) == {"try": 3}
    assert toy_api.keys() == [KEY, KEY, KEY]


def test_5xx_after_every_attempt_is_a_retryable_server_error(toy_api: ToyApi, tmp_path: Path) -> None:
    outcome = call(settings(tmp_path, bridge_attempts=2), tool(toy_api.url("/status/503")), ARGS)
    assert not outcome.ok and outcome.error_kind == "server_error" and outcome.retryable
    assert outcome.status_code == 503 and outcome.attempts == 2 and toy_api.keys() == [KEY, KEY]


def test_429_after_every_attempt_is_rate_limited(toy_api: ToyApi, tmp_path: Path) -> None:
    outcome = call(settings(tmp_path, bridge_attempts=2), tool(toy_api.url("/status/429")), ARGS)
    assert outcome.error_kind == "rate_limited" and outcome.retryable and outcome.attempts == 2


def test_501_is_not_retried(toy_api: ToyApi, tmp_path: Path) -> None:
    outcome = call(settings(tmp_path), tool(toy_api.url("/status/501")), ARGS)
    assert outcome.error_kind == "server_error" and not outcome.retryable and outcome.attempts == 1


def test_timeouts_are_retried_with_the_same_key_then_fail_within_the_deadline(toy_api: ToyApi, tmp_path: Path) -> None:
    deadline_s = 2.0
    outcome = call(settings(tmp_path, bridge_attempts=50, bridge_deadline_s=deadline_s),
                   tool(toy_api.url("/slow"), timeout_ms=200), ARGS)
    assert not outcome.ok and outcome.error_kind == "timeout" and outcome.retryable and outcome.status_code is None
    assert 2 <= outcome.attempts < 50, outcome  # the deadline, not the attempt count, ended it
    assert outcome.latency_ms < (deadline_s + 1.0) * 1000  # no attempt and no backoff runs past the deadline
    # every request the server saw carried the one key (the last attempt may end before it is sent)
    assert set(toy_api.keys()) == {KEY} and 2 <= len(toy_api.keys()) <= outcome.attempts


def test_a_refused_connection_is_a_retryable_transport_failure(tmp_path: Path) -> None:
    from tests.helpers import free_port

    the_tool = tool(f"http://127.0.0.1:{free_port()}/echo")
    outcome = call(settings(tmp_path, bridge_attempts=2), the_tool, ARGS)
    assert outcome.error_kind == "transport" and outcome.retryable and outcome.attempts == 2


@pytest.mark.parametrize("path", ["/big/2048", "/stream/5000"])
def test_an_oversize_answer_is_response_too_large(toy_api: ToyApi, tmp_path: Path, path: str) -> None:
    outcome = call(settings(tmp_path, bridge_max_response_bytes=1024), tool(toy_api.url(path)), ARGS)
    assert not outcome.ok and outcome.error_kind == "response_too_large" and not outcome.retryable
    assert outcome.attempts == 1 and len(outcome.result_json) < 1024


def test_an_answer_at_the_cap_is_read_whole(toy_api: ToyApi, tmp_path: Path) -> None:
    outcome = call(settings(tmp_path, bridge_max_response_bytes=1024), tool(toy_api.url("/big/1024")), ARGS)
    assert outcome.ok and json.loads(outcome.result_json) == {"text": "x" * 1024}


def test_a_redirect_is_not_followed(toy_api: ToyApi, tmp_path: Path) -> None:
    outcome = call(settings(tmp_path), tool(toy_api.url("/redirect")), ARGS)
    assert not outcome.ok and outcome.status_code == 302 and outcome.error_kind == "client_error"
    assert "not followed" in outcome.error and len(toy_api.seen) == 1


def scan_for_secret(outcome: CallOutcome, caplog: pytest.LogCaptureFixture) -> None:
    for name, value in vars(outcome).items():
        assert SECRET not in str(value), f"the secret leaked into CallOutcome.{name}"
    for record in caplog.records:
        assert SECRET not in record.getMessage() and SECRET not in str(record.args), f"leaked into log {record.name}"
        if record.exc_info and record.exc_info[1] is not None:
            assert SECRET not in str(record.exc_info[1])
    assert SECRET not in caplog.text


def secrets() -> SecretResolver:
    return SecretResolver([EnvSecrets({"ACME_TOKEN": SECRET})])


def test_secret_is_sent_as_bearer_but_never_returned_or_logged(toy_api: ToyApi, tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    the_agent = agent(allowed_secrets=frozenset({"env:ACME_TOKEN"}))
    ok = call(settings(tmp_path), tool(toy_api.url("/echo"), secret_ref="env:ACME_TOKEN"), ARGS, the_agent,
              secrets=secrets())
    assert ok.ok and toy_api.seen[0].headers["authorization"] == f"Bearer {SECRET}"
    assert json.loads(ok.result_json)["headers"]["authorization"] == "Bearer ***"  # the server echoed it back
    failed = call(settings(tmp_path), tool(toy_api.url("/status/401"), secret_ref="env:ACME_TOKEN"), ARGS, the_agent,
                  secrets=secrets())
    assert failed.error_kind == "client_error" and toy_api.seen[1].headers["authorization"] == f"Bearer {SECRET}"
    for outcome in (ok, failed):
        scan_for_secret(outcome, caplog)
    assert any(r.name == "streams.bridge" for r in caplog.records)


def test_secret_placeholder_in_a_header_replaces_the_bearer_rule(toy_api: ToyApi, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    the_tool = tool(toy_api.url("/echo"), secret_ref="env:ACME_TOKEN", headers={"X-Api-Key": "{secret}"})
    outcome = call(settings(tmp_path), the_tool, ARGS, agent(allowed_secrets=frozenset({"env:ACME_TOKEN"})),
                   secrets=secrets())
    assert outcome.ok and toy_api.seen[0].headers["x-api-key"] == SECRET
    assert "authorization" not in toy_api.seen[0].headers
    scan_for_secret(outcome, caplog)


def test_a_secret_that_is_no_header_value_is_refused_without_showing_it(toy_api: ToyApi, tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bad = SecretResolver([EnvSecrets({"ACME_TOKEN": SECRET + "\r\nX-Injected: 1"})])
    outcome = call(settings(tmp_path), tool(toy_api.url("/echo"), secret_ref="env:ACME_TOKEN"), ARGS,
                   agent(allowed_secrets=frozenset({"env:ACME_TOKEN"})), secrets=bad)
    assert outcome.error_kind == "missing_secret" and toy_api.seen == []
    scan_for_secret(outcome, caplog)


def test_a_secret_goes_only_to_the_hosts_it_is_bound_to_and_over_https_unless_allow_listed(
        toy_api: ToyApi, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The company bound its token to billing.acme.test:443: the tool re-pointed at the toy API (allow-listed,
    but not the token's host) gets no token and sends nothing; bound to the toy API's plain-http host that is
    on the allow-list, it is sent; bound to a plain-http host that is not allow-listed, it is refused."""
    caplog.set_level(logging.DEBUG)
    repointed = tool(toy_api.url("/echo"), secret_ref="env:ACME_TOKEN")
    toy = f"127.0.0.1:{toy_api.port}"
    base = agent(allowed_hosts=frozenset({toy}), allowed_secrets=frozenset({"env:ACME_TOKEN"}))
    refused = call(settings(tmp_path), repointed, ARGS, dataclasses.replace(
        base, secret_hosts={"env:ACME_TOKEN": frozenset({"billing.acme.test:443"})}), secrets=secrets())
    assert refused.error_kind == "secret_not_allowed" and "billing.acme.test:443" in refused.error
    assert toy_api.seen == []
    sent = call(settings(tmp_path), repointed, ARGS, dataclasses.replace(
        base, secret_hosts={"env:ACME_TOKEN": frozenset({toy})}), secrets=secrets())
    assert sent.ok and toy_api.seen[0].headers["authorization"] == f"Bearer {SECRET}"
    plain = call(settings(tmp_path), tool("http://api.acme.test/v1", secret_ref="env:ACME_TOKEN"), ARGS,
                 dataclasses.replace(base, secret_hosts={"env:ACME_TOKEN": frozenset({"api.acme.test:80"})}),
                 secrets=secrets(), resolver=FakeResolver({"api.acme.test": ["93.184.216.34"]}))
    assert plain.error_kind == "secret_not_allowed" and "https only" in plain.error and plain.attempts == 0
    for outcome in (refused, sent, plain):
        scan_for_secret(outcome, caplog)


def test_secret_file_reference(toy_api: ToyApi, tmp_path: Path) -> None:
    path = tmp_path / "acme-token"
    path.write_text(SECRET + "\n")
    ref = f"file:{path}"
    outcome = call(settings(tmp_path), tool(toy_api.url("/echo"), secret_ref=ref), ARGS,
                   agent(allowed_secrets=frozenset({ref})), secrets=SecretResolver([FileSecrets(tmp_path)]))
    assert outcome.ok and toy_api.seen[0].headers["authorization"] == f"Bearer {SECRET}"


def test_missing_secret_sends_nothing(toy_api: ToyApi, tmp_path: Path) -> None:
    outcome = call(settings(tmp_path), tool(toy_api.url("/echo"), secret_ref="env:ABSENT"), ARGS,
                   agent(allowed_secrets=frozenset({"env:ABSENT"})), secrets=secrets())
    assert outcome.error_kind == "missing_secret" and "env:ABSENT" in outcome.error and outcome.attempts == 0
    assert toy_api.seen == []


def test_a_secret_the_company_may_not_use_is_refused_before_it_is_resolved(toy_api: ToyApi, tmp_path: Path) -> None:
    outcome = call(settings(tmp_path), tool(toy_api.url("/echo"), secret_ref="env:ACME_TOKEN"), ARGS,
                   agent(allowed_hosts=frozenset({f"127.0.0.1:{toy_api.port}"})),
                   secrets=secrets())
    assert outcome.error_kind == "secret_not_allowed" and "env:ACME_TOKEN" in outcome.error
    assert SECRET not in outcome.error and toy_api.seen == []


def test_loopback_is_refused_unless_allow_listed(toy_api: ToyApi, tmp_path: Path) -> None:
    refused = call(settings(tmp_path), tool(toy_api.url("/echo")), ARGS, agent(allowed_hosts=frozenset()))
    assert refused.error_kind == "blocked_address" and "127.0.0.1" in refused.error and refused.attempts == 0
    assert toy_api.seen == []
    other_port = call(settings(tmp_path), tool(toy_api.url("/echo")), ARGS,
                      agent(allowed_hosts=frozenset({f"127.0.0.1:{toy_api.port + 1}"})))
    assert other_port.error_kind == "blocked_address" and toy_api.seen == []
    allowed = call(settings(tmp_path), tool(toy_api.url("/echo")), ARGS,
                   agent(allowed_hosts=frozenset({f"127.0.0.1:{toy_api.port}"})))
    assert allowed.ok and len(toy_api.seen) == 1


def test_the_checked_address_is_the_one_connected_to(toy_api: ToyApi, tmp_path: Path) -> None:
    """A name is resolved once, checked, and the request goes to that address with the name as Host."""
    resolver = FakeResolver({"api.acme.test": ["127.0.0.1"]})
    outcome = call(settings(tmp_path), tool(toy_api.url("/echo", host="api.acme.test")), ARGS,
                   agent(allowed_hosts=frozenset({f"api.acme.test:{toy_api.port}"})), resolver=resolver)
    assert outcome.ok, outcome
    assert toy_api.seen[0].headers["host"] == f"api.acme.test:{toy_api.port}"


def test_https_is_pinned_with_the_name_as_sni(tmp_path: Path) -> None:
    recording = Recording()
    resolver = FakeResolver({"api.acme.example": ["93.184.216.34"]})
    outcome = call(settings(tmp_path), tool("https://api.acme.example/v1/invoices"), ARGS, agent(),
                   resolver=resolver, transport=recording)
    assert outcome.ok
    request = recording.requests[0]
    assert request.url.host == "93.184.216.34" and request.url.scheme == "https"
    assert request.headers["host"] == "api.acme.example" and request.extensions["sni_hostname"] == "api.acme.example"


@pytest.mark.parametrize(("url", "table"), [
    ("http://169.254.169.254/latest/meta-data/", {}),
    ("http://metadata.google.internal/computeMetadata/v1/", {}),
    ("http://[fd00:ec2::254]/latest/", {}),
    ("http://100.100.100.200/latest/meta-data/", {}),
    ("http://10.0.0.5:8080/admin", {}),
    ("http://[::ffff:127.0.0.1]:8080/", {}),
    ("http://0x7f000001/", {"0x7f000001": ["127.0.0.1"]}),
    ("http://internal.acme.example/", {"internal.acme.example": ["192.168.1.20"]}),
    ("http://rebind.acme.example/", {"rebind.acme.example": ["93.184.216.34", "169.254.169.254"]}),
    ("http://link.acme.example/", {"link.acme.example": ["fe80::1"]}),
])
def test_private_and_metadata_addresses_are_refused_before_any_connection(tmp_path: Path, url: str,
                                                                         table: dict[str, list[str]]) -> None:
    guard = NoConnections()
    outcome = call(settings(tmp_path), tool(url), ARGS, agent(allowed_hosts=frozenset()),
                   resolver=FakeResolver(table), transport=guard)
    assert outcome.error_kind == "blocked_address" and not outcome.retryable and outcome.attempts == 0, outcome
    assert guard.requests == []


def test_metadata_stays_refused_even_when_allow_listed(tmp_path: Path) -> None:
    guard = NoConnections()
    outcome = call(settings(tmp_path), tool("http://169.254.169.254/latest/"), ARGS,
                   agent(allowed_hosts=frozenset({"169.254.169.254"})), resolver=FakeResolver({}), transport=guard)
    assert outcome.error_kind == "blocked_address" and guard.requests == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1:70/",
                                 "http:///nohost", "http://user:pw@127.0.0.1/"])
def test_non_http_urls_are_bad_urls(tmp_path: Path, url: str) -> None:
    guard = NoConnections()
    outcome = call(settings(tmp_path), tool(url), ARGS, resolver=FakeResolver({}), transport=guard)
    assert outcome.error_kind == "bad_url" and guard.requests == []


@pytest.mark.parametrize("headers", [{"X-Note": "caf\u00e9"}, {"X-Split": "a\r\nX-Injected: 1"}, {"Bad Name": "x"}])
def test_a_header_that_cannot_be_sent_is_a_bad_url(tmp_path: Path, headers: dict[str, str]) -> None:
    guard = NoConnections()
    outcome = call(settings(tmp_path), tool("http://api.acme.example/x", headers=headers), ARGS,
                   resolver=FakeResolver({"api.acme.example": ["93.184.216.34"]}), transport=guard)
    assert outcome.error_kind == "bad_url" and guard.requests == []


def test_a_template_argument_cannot_change_the_host(tmp_path: Path) -> None:
    guard = NoConnections()
    schema = {"type": "object", "properties": {"tenant": {"type": "string"}}}
    the_tool = tool("http://{tenant}.acme.example/x", method="GET", schema=schema)
    outcome = call(settings(tmp_path), the_tool, {"tenant": "169.254.169.254/"}, agent(allowed_hosts=frozenset()),
                   resolver=FakeResolver({}), transport=guard)
    assert outcome.error_kind == "bad_url" and guard.requests == []


def test_per_company_concurrency_limit_holds(toy_api: ToyApi, tmp_path: Path) -> None:
    limit, calls = 2, 7
    toy_api.gate_size, toy_api.gate_total = limit, calls
    the_agent = agent(concurrency=limit, allowed_hosts=frozenset({f"127.0.0.1:{toy_api.port}"}))
    the_tool = tool(toy_api.url("/gate"))

    async def run() -> list[CallOutcome]:
        bridge = ApiBridge(settings(tmp_path))
        try:
            return list(await asyncio.gather(*(bridge.call(the_tool, ARGS, f"{KEY}/{i}", the_agent) for i in range(calls))))
        finally:
            await bridge.aclose()

    outcomes = asyncio.run(run())
    assert all(o.ok for o in outcomes), outcomes
    assert toy_api.max_in_flight == limit
    assert len(toy_api.seen) == calls


class SilentResolver:
    """A DNS server that never answers."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        await asyncio.sleep(3600)
        return []


def test_a_name_that_never_resolves_fails_within_the_calls_bound(tmp_path: Path) -> None:
    outcome = call(settings(tmp_path), tool("https://slow-dns.acme.test/v1", timeout_ms=300), ARGS,
                   resolver=SilentResolver())
    assert not outcome.ok and outcome.error_kind == "transport" and outcome.retryable
    assert "did not resolve within 0.3 s" in outcome.error
