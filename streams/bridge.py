"""The API bridge: the one way an agent calls a company's API, and the one place that decides what such a
call may do.

In order, before anything is sent: the arguments must fit the tool's schema (`call_plan`); the tool's
secret must be one the company allows, and be there (`secrets`); the host must resolve only to addresses
tools may reach, or be on the company's allow-list (`addresses`). Then the call is sent to one of the
addresses that were checked — the URL is rewritten to the IP, with the original `Host` header and, for
https, the original name as TLS SNI and certificate name — so a second DNS answer cannot redirect it
(DNS rebinding). Redirects are not followed (a redirect could point anywhere) and proxies from the
environment are not used.

Every attempt carries the caller's `Idempotency-Key`, so transport errors, timeouts, 429 and 5xx are
retried (core.retry's policy, bounded by a total deadline) without risking a second effect; any other
answer is final. The body is streamed and reading stops past `bridge_max_response_bytes`.

The outcome is a value, never an exception: the agent loop records it as an event. A secret's value is
never logged, and any echo of it in an answer or error message is replaced by `***`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from core.retry import RETRY_STATUSES, RetryableStatus, RetryPolicy, http_transient, raise_for_retry
from core.settings import Settings
from streams.addresses import AddressResolver, IPAddress, SystemResolver, checked_addresses, is_allowed
from streams.agent_settings import AgentSettings
from streams.call_plan import PlannedCall, build_headers, plan_call
from streams.errors import AttemptTimedOut, BridgeError, ResponseTooLarge, SecretNotAllowed, UnresolvedHost
from streams.outcomes import CallOutcome
from streams.secrets import EnvSecrets, FileSecrets, SecretResolver, SecretValue
from streams.tools import Tool

log = logging.getLogger(__name__)
REDACTED = "***"
_ERROR_BODY_CHARS = 300


@dataclass(frozen=True)
class _Answer:
    status_code: int
    body: str
    location: str | None


class _Redactor:
    """Replaces a secret's value wherever it shows up in text or in a decoded JSON value."""

    def __init__(self, secret: SecretValue | None) -> None:
        self._value = secret.reveal() if secret is not None else ""

    def text(self, text: str) -> str:
        return text.replace(self._value, REDACTED) if self._value else text

    def json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(v) for v in value]
        if isinstance(value, dict):
            return {self.text(str(k)): self.json(v) for k, v in value.items()}
        return value


def _retry_if(exc: BaseException) -> bool:
    """core.retry's HTTP predicate with read timeouts resent (the Idempotency-Key makes it safe), minus
    transport errors that are the request's own fault and would fail the same way again."""
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.LocalProtocolError)):
        return False
    return http_transient(resend_after_read_timeout=True)(exc)


def _result_json(body: str, redact: _Redactor) -> str:
    """The body as JSON text: as sent when it is JSON, `{"text": ...}` when not, `{}` when empty."""
    if not body.strip():
        return "{}"
    try:
        value = json.loads(body)
    except ValueError:
        value = {"text": body}
    return json.dumps(redact.json(value), ensure_ascii=False, separators=(",", ":"))


class ApiBridge:
    """Calls company tools for the agents; one instance per process (it pools connections)."""

    def __init__(self, settings: Settings, secrets: SecretResolver | None = None, resolver: AddressResolver | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._settings = settings
        self._secrets = secrets or SecretResolver([
            FileSecrets(settings.bridge_secret_files_root or settings.home / "secrets"), EnvSecrets()])
        self._resolver = resolver or SystemResolver()
        self._http = httpx.AsyncClient(transport=transport, trust_env=False, follow_redirects=False)
        self._policy = RetryPolicy(attempts=settings.bridge_attempts, deadline_s=settings.bridge_deadline_s,
                                   backoff_s=settings.bridge_backoff_s)
        self._limits: dict[str, tuple[int, asyncio.Semaphore]] = {}

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(self, tool: Tool, arguments: Mapping[str, Any], idempotency_key: str,
                   agent: AgentSettings) -> CallOutcome:
        """Call `tool` with `arguments` for `agent`'s company; every failure is an outcome, not an exception."""
        if not idempotency_key or not idempotency_key.isascii() or not idempotency_key.isprintable():
            raise ValueError(f"idempotency_key must be printable ASCII, not {idempotency_key!r}")
        started = time.monotonic()
        attempts = [0]
        redact = _Redactor(None)
        try:
            plan = plan_call(tool, arguments)
            secret = self._secret(tool, agent, plan)
            redact = _Redactor(secret)
            headers = build_headers(tool, idempotency_key, secret)
            port = plan.url.port or (443 if plan.url.scheme == "https" else 80)
            host = plan.url.raw_host.decode("ascii")
            resolving_s = min(tool.timeout_ms / 1000.0, self._policy.deadline_s)
            try:  # a resolver that never answers is bounded like the call itself
                async with asyncio.timeout(resolving_s):
                    addresses = await checked_addresses(host, port, agent.allowed_hosts, self._resolver)
            except TimeoutError:
                raise UnresolvedHost(f"host {host!r} did not resolve within {resolving_s:g} s") from None
            async with self._slot(agent):
                answer = await self._policy.call_async(
                    lambda remaining_s: self._attempt(tool, plan, headers, addresses, attempts, remaining_s),
                    retry_if=_retry_if)
            outcome = self._answered(answer, redact, attempts[0], started)
        except BridgeError as exc:
            outcome = self._failed(exc.kind, str(exc), exc.retryable, redact, attempts[0], started)
        except RetryableStatus as exc:
            kind = "rate_limited" if exc.response.status_code == 429 else "server_error"
            outcome = self._failed(kind, f"{exc} (after {attempts[0]} attempts)", True, redact, attempts[0], started,
                                   status_code=exc.response.status_code, body=exc.response.text)
        except AttemptTimedOut as exc:
            outcome = self._failed("timeout", f"{exc} (after {attempts[0]} attempts)", True, redact, attempts[0], started)
        except httpx.HTTPError as exc:
            retryable = _retry_if(exc)
            outcome = self._failed("transport", f"{type(exc).__name__}: {exc} (after {attempts[0]} attempts)", retryable,
                                   redact, attempts[0], started)
        log.info("tool call %s/%s -> %s in %d attempt(s), %.1f ms", tool.company_id, tool.name,
                 outcome.status_code or outcome.error_kind, outcome.attempts, outcome.latency_ms)
        return outcome

    def _secret(self, tool: Tool, agent: AgentSettings, plan: PlannedCall) -> SecretValue | None:
        """The tool's secret, only to a host its company bound it to (`secret_hosts`), over https unless that host
        is on its allow-list: a tool re-pointed elsewhere, or a placeholder in its host, gets no secret."""
        if tool.secret_ref is None:
            return None
        ref = tool.secret_ref
        if ref not in agent.allowed_secrets:
            raise SecretNotAllowed(f"tool {tool.name!r}: secret {ref!r} is not in company "
                                   f"{agent.company_id!r}'s allowed_secrets")
        host = plan.url.raw_host.decode("ascii")
        port = plan.url.port or (443 if plan.url.scheme == "https" else 80)
        bound = agent.secret_hosts.get(ref, frozenset())
        if not is_allowed(host, port, bound):
            raise SecretNotAllowed(f"tool {tool.name!r}: secret {ref!r} may be sent only to "
                                   f"{', '.join(sorted(bound)) or 'no host'} (secret_hosts), not {host}:{port}")
        if plan.url.scheme != "https" and not is_allowed(host, port, agent.allowed_hosts):
            raise SecretNotAllowed(f"tool {tool.name!r}: secret {ref!r} goes over https only, unless its host is "
                                   f"on allowed_hosts; {host}:{port} is plain http")
        return self._secrets.resolve(ref)

    def _slot(self, agent: AgentSettings) -> asyncio.Semaphore:
        """The company's semaphore, sized by its agent settings (a new size takes effect for new calls)."""
        size = max(1, agent.concurrency)
        current = self._limits.get(agent.company_id)
        if current is None or current[0] != size:
            current = (size, asyncio.Semaphore(size))
            self._limits[agent.company_id] = current
        return current[1]

    async def _attempt(self, tool: Tool, plan: PlannedCall, headers: dict[str, str], addresses: Sequence[IPAddress],
                       attempts: list[int], remaining_s: float) -> _Answer:
        """One try, pinned to a checked address (tries rotate over them), bounded by the tool's timeout."""
        address = addresses[attempts[0] % len(addresses)]
        attempts[0] += 1
        budget_s = max(min(tool.timeout_ms / 1000.0, remaining_s), 0.001)
        extensions = {"sni_hostname": plan.url.raw_host.decode("ascii")} if plan.url.scheme == "https" else {}
        request = self._http.build_request(
            plan.method, plan.url.copy_with(host=str(address)), json=plan.json_body,
            headers={**headers, "Host": plan.url.netloc.decode("ascii")}, timeout=budget_s, extensions=extensions)
        try:
            async with asyncio.timeout(budget_s):
                response = await self._http.send(request, stream=True)
                try:
                    body = await self._read_capped(tool, response)
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise AttemptTimedOut(f"tool {tool.name!r}: no complete answer within {budget_s:.3f}s "
                                  f"({type(exc).__name__})") from None
        if response.status_code in RETRY_STATUSES:
            raise_for_retry(httpx.Response(response.status_code, content=body.encode(), request=request))
        return _Answer(response.status_code, body, response.headers.get("location"))

    async def _read_capped(self, tool: Tool, response: httpx.Response) -> str:
        cap = self._settings.bridge_max_response_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise ResponseTooLarge(f"tool {tool.name!r}: the answer declares {declared} bytes, more than {cap}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise ResponseTooLarge(f"tool {tool.name!r}: the answer is longer than {cap} bytes")
            chunks.append(chunk)
        try:
            return b"".join(chunks).decode(response.charset_encoding or "utf-8", errors="replace")
        except LookupError:
            return b"".join(chunks).decode("utf-8", errors="replace")

    def _answered(self, answer: _Answer, redact: _Redactor, attempts: int, started: float) -> CallOutcome:
        status = answer.status_code
        if 200 <= status < 300:
            return CallOutcome(True, status, _result_json(answer.body, redact), "", "", False, attempts,
                               (time.monotonic() - started) * 1000)
        if 300 <= status < 400:
            message = f"HTTP {status}: redirect to {answer.location!r} not followed"
        else:
            message = f"HTTP {status}: {answer.body[:_ERROR_BODY_CHARS]}"
        kind = "server_error" if status >= 500 else "client_error"
        return self._failed(kind, message, False, redact, attempts, started, status_code=status, body=answer.body)

    @staticmethod
    def _failed(kind: str, message: str, retryable: bool, redact: _Redactor, attempts: int, started: float,
                status_code: int | None = None, body: str = "") -> CallOutcome:
        return CallOutcome(False, status_code, _result_json(body, redact), redact.text(message), kind, retryable,
                           attempts, (time.monotonic() - started) * 1000)
