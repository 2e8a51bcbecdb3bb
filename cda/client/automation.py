"""`CompanyAutomation`: the REST API in the seed's own words, for Python callers.

    async with CompanyAutomation("http://127.0.0.1:8000", api_key) as automation:
        await automation.register_company_tools(company_id="acme", tools=[...])
        await automation.train_company_adapter(company_id="acme", training_data=[...], wait=True)
        result = await automation.process_company_data(company_id="acme",
                                                       data={"task": "process_invoices", "invoices": [...]})

Every call names its company; the client checks it against the key's own company once (`GET /key`) and the
API checks it again. A 429 or 5xx is retried as `Retry-After` says (else with a growing pause), a few times;
other errors raise at once, typed (`cda.client.errors`). `process_company_data` follows the job's events
(Server-Sent Events) until it ends, within `timeout_s`, and returns what each record became.
`SyncCompanyAutomation` is the same for code without an event loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from cda.client.errors import ApiRefused, InvalidRequest, NotFound, TimedOut, Unauthorized, Unavailable, WrongCompany
from cda.client.results import AutomationResult, TrainingResult

PREFIX = "/company-automation"
T = TypeVar("T")


def _refusal(response: httpx.Response) -> ApiRefused:
    try:
        message = str(response.json().get("error") or response.text)
    except (json.JSONDecodeError, AttributeError):
        message = response.text
    kind = {401: Unauthorized, 404: NotFound}.get(response.status_code)
    if kind is None:
        kind = Unavailable if response.status_code == 429 or response.status_code >= 500 else InvalidRequest
    return kind(response.status_code, message)


def _pause(response: httpx.Response, attempt: int) -> float:
    try:
        return min(60.0, max(0.0, float(response.headers.get("Retry-After", ""))))
    except ValueError:
        return min(10.0, 0.5 * 2 ** attempt)


class CompanyAutomation:
    """An async client of one cda REST API with one company's key."""

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float = 30.0, retries: int = 4,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.retries = retries
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport,
                                       headers={"Authorization": f"Bearer {api_key}"})
        self._company: str | None = None

    async def __aenter__(self) -> CompanyAutomation:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the seed's calls ---------------------------------------------------------------------------
    async def register_company_tools(self, company_id: str, tools: list[dict[str, Any]] | dict[str, Any],
                                     **options: Any) -> list[str]:
        """Register `tools` (a list of tool definitions, or a whole OpenAPI document); the names registered."""
        await self._check(company_id)
        body = {"tools": tools} if isinstance(tools, list) else {"openapi": tools}
        answer = await self._request("POST", "/register-tools", json={**body, **options, "company_id": company_id})
        return list(answer["registered"])

    async def train_company_adapter(self, company_id: str, training_data: list[dict[str, Any]], method: str = "LORA",
                                    wait: bool = False, timeout_s: float = 3600.0, **options: Any) -> TrainingResult:
        """Train the company's adapter on labelled records (`task`, `data`, `tool`, `arguments`); with `wait`, until
        the gate has decided (`ready` or `rejected`) or the run failed. `options`: steps, rank, force, ..."""
        await self._check(company_id)
        body = {"training_data": training_data, "method": method, **options, "company_id": company_id}
        accepted = await self._request("POST", "/train-adapter", json=body)
        path = f"/training/{accepted['request_id']}"
        run = await self._request("GET", path)
        deadline = time.monotonic() + timeout_s
        while wait and run["status"] in ("requested", "training"):
            if time.monotonic() > deadline:
                raise TimedOut(f"training {accepted['request_id']}", accepted["url"], timeout_s)
            await asyncio.sleep(2.0)
            run = await self._request("GET", path)
        return TrainingResult.from_run(run)

    async def process_company_data(self, company_id: str, data: Any, use_adapter: bool = True, wait: bool = True,
                                   timeout_s: float = 300.0, task: str | None = None, session_id: str | None = None,
                                   request_id: str | None = None) -> AutomationResult:
        """Process `data` (the task inside it as `data["task"]`, or given as `task`); with `wait`, the results once
        the job has ended: per record the tool called, its arguments, the answer, the status."""
        await self._check(company_id)
        body: dict[str, Any] = {"data": data, "use_adapter": use_adapter, "company_id": company_id}
        body |= {k: v for k, v in (("task", task), ("session_id", session_id), ("request_id", request_id)) if v}
        accepted = await self._request("POST", "/process", json=body)
        if wait:
            await self._follow(accepted, timeout_s)
        return AutomationResult.from_job(await self._request("GET", f"/jobs/{accepted['job_id']}"))

    async def list_adapters(self, company_id: str) -> dict[str, Any]:
        """The company's adapter versions, with their metrics, and which one is served (`active`)."""
        await self._check(company_id)
        return await self._request("GET", "/adapters")

    async def job(self, job_id: str) -> AutomationResult:
        return AutomationResult.from_job(await self._request("GET", f"/jobs/{job_id}"))

    # -- the plumbing -------------------------------------------------------------------------------
    async def _check(self, company_id: str) -> None:
        if self._company is None:
            self._company = str((await self._request("GET", "/key"))["company_id"])
        if company_id != self._company:
            raise WrongCompany(f"this key belongs to company {self._company!r}, not {company_id!r}")

    async def _follow(self, accepted: dict[str, Any], timeout_s: float) -> None:
        """Read the job's events until its last one (`job_completed` or `job_failed`), within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                    async with self._http.stream("GET", accepted["events_url"], timeout=None) as response:
                        if response.status_code != 200:
                            raise _refusal(response) if response.status_code < 500 else httpx.TransportError("5xx")
                        async for line in response.aiter_lines():
                            if line.startswith("event:") and line.split(":", 1)[1].strip() in ("job_completed",
                                                                                               "job_failed"):
                                return
            except TimeoutError:
                break
            except (httpx.TransportError, Unavailable):
                await asyncio.sleep(1.0)  # the stream broke (or the API restarts): follow it again
        raise TimedOut(f"job {accepted['job_id']}", accepted["url"], timeout_s)

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        url = path if path.startswith("http") else PREFIX + path
        return await self._retrying(lambda: self._http.request(method, url, **kwargs))

    async def _retrying(self, send: Callable[[], Awaitable[httpx.Response]]) -> Any:
        for attempt in range(self.retries + 1):
            try:
                response = await send()
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise Unavailable(0, f"the API could not be reached: {exc!r}") from exc
                await asyncio.sleep(min(10.0, 0.5 * 2 ** attempt))
                continue
            if response.status_code < 400:
                return response.json()
            error = _refusal(response)
            if not isinstance(error, Unavailable) or attempt == self.retries:
                raise error
            await asyncio.sleep(_pause(response, attempt))
        raise AssertionError("unreachable")


class SyncCompanyAutomation:
    """`CompanyAutomation` for code without an event loop: the same calls, each run to its end."""

    def __init__(self, base_url: str, api_key: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = self._run(self._make(base_url, api_key, options))

    @staticmethod
    async def _make(base_url: str, api_key: str, options: dict[str, Any]) -> CompanyAutomation:
        return CompanyAutomation(base_url, api_key, **options)

    def _run(self, call: Awaitable[T]) -> T:
        return self._loop.run_until_complete(call)

    def __enter__(self) -> SyncCompanyAutomation:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._run(self._client.aclose())
        self._loop.close()

    def register_company_tools(self, company_id: str, tools: list[dict[str, Any]] | dict[str, Any],
                               **options: Any) -> list[str]:
        return self._run(self._client.register_company_tools(company_id, tools, **options))

    def train_company_adapter(self, company_id: str, training_data: list[dict[str, Any]], **options: Any) -> TrainingResult:
        return self._run(self._client.train_company_adapter(company_id, training_data, **options))

    def process_company_data(self, company_id: str, data: Any, **options: Any) -> AutomationResult:
        return self._run(self._client.process_company_data(company_id, data, **options))

    def list_adapters(self, company_id: str) -> dict[str, Any]:
        return self._run(self._client.list_adapters(company_id))
