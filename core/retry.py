"""The one retry policy of cda (on tenacity): bounded attempts, exponential backoff with jitter, and a
total deadline that no retry sleeps past, so a caller's documented bound holds however many layers retry.

Which failures are worth another attempt is the caller's predicate; for HTTP, `http_transient` says:
connection failures, 429 and 5xx yes; a read timeout only when the request is safe to send twice (a
generation that timed out while being read may still be running, so it is not blindly re-sent).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx
from tenacity import (
    AsyncRetrying,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from core.bounds import above, at_least
from core.errors import CdaError, TransientError, is_transient

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class RetryableStatus(TransientError):
    """An HTTP answer that asks to be tried again (429 or 5xx)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}: {response.text[:300]}")
        self.response = response


@dataclass(frozen=True)
class RetryPolicy:
    """At most `attempts` tries within `deadline_s` in all; waits grow from `backoff_s` to `max_backoff_s`."""

    attempts: int = 3
    deadline_s: float = 30.0
    backoff_s: float = 0.2
    max_backoff_s: float = 5.0

    def __post_init__(self) -> None:
        at_least("RetryPolicy", 1, attempts=self.attempts)
        above("RetryPolicy", 0, deadline_s=self.deadline_s)

    def _kwargs(self, retry_if: Callable[[BaseException], bool]) -> dict[str, object]:
        return {
            "stop": stop_after_attempt(self.attempts) | stop_before_delay(self.deadline_s),
            "wait": wait_exponential_jitter(multiplier=self.backoff_s, max=self.max_backoff_s, jitter=self.backoff_s),
            "retry": retry_if_exception(retry_if),
            "reraise": True,
        }

    def call(self, attempt: Callable[[float], T], retry_if: Callable[[BaseException], bool] = is_transient) -> T:
        """Run `attempt(remaining_s)` until it returns, a failure is not retryable, or the bound is spent."""
        deadline = time.monotonic() + self.deadline_s
        for trial in Retrying(**self._kwargs(retry_if)):  # type: ignore[arg-type]
            with trial:
                return attempt(max(deadline - time.monotonic(), 0.001))
        raise AssertionError("unreachable: tenacity re-raises the last failure")  # pragma: no cover

    async def call_async(self, attempt: Callable[[float], Awaitable[T]],
                         retry_if: Callable[[BaseException], bool] = is_transient) -> T:
        """The async twin of `call`."""
        deadline = time.monotonic() + self.deadline_s
        async for trial in AsyncRetrying(**self._kwargs(retry_if)):  # type: ignore[arg-type]
            with trial:
                return await attempt(max(deadline - time.monotonic(), 0.001))
        raise AssertionError("unreachable: tenacity re-raises the last failure")  # pragma: no cover


def raise_for_retry(response: httpx.Response) -> httpx.Response:
    """Turn a 429/5xx answer into `RetryableStatus`; any other answer is returned to the caller as is."""
    if response.status_code in RETRY_STATUSES:
        raise RetryableStatus(response)
    return response


def http_transient(resend_after_read_timeout: bool) -> Callable[[BaseException], bool]:
    """The predicate for HTTP calls: connection failures, 429/5xx, and read timeouts when safe to resend."""
    def retry_if(exc: BaseException) -> bool:
        if isinstance(exc, (httpx.ReadTimeout, httpx.WriteTimeout)):
            return resend_after_read_timeout
        if isinstance(exc, (httpx.TransportError, RetryableStatus)):
            return True
        return is_transient(exc)

    return retry_if


class Stopped(CdaError):
    """`outlast` was asked to stop while it waited out an outage; the work was not done."""


def outlast(attempt: Callable[[], T], what: str, stop: threading.Event | None = None, first_s: float = 0.5,
            max_s: float = 10.0, on_outage: Callable[[BaseException], None] | None = None) -> T:
    """`attempt()` until it returns, waiting out transient failures with pauses that double from `first_s` to
    `max_s` — without a bound, for workers that must not give up on a record (a broker, store or model server
    that is down comes back). A non-transient failure escapes at once; `stop` set raises `Stopped`.
    `what` is logged with each pause ("<what> in 0.5s: <error>")."""
    pause = first_s
    while True:
        if stop is not None and stop.is_set():
            raise Stopped(what)
        try:
            return attempt()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if on_outage is not None:
                on_outage(exc)
            log.warning("%s in %.1fs: %s", what, pause, exc)
            if stop is not None and stop.wait(pause):
                raise Stopped(what) from exc
            if stop is None:
                time.sleep(pause)
            pause = min(pause * 2, max_s)


async def outlast_async(attempt: Callable[[], Awaitable[T]], what: str, stop: threading.Event | None = None,
                        first_s: float = 0.5, max_s: float = 10.0) -> T:
    """The async twin of `outlast`: the pauses are `asyncio.sleep`s, so the loop goes on meanwhile."""
    pause = first_s
    while True:
        if stop is not None and stop.is_set():
            raise Stopped(what)
        try:
            return await attempt()
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("%s in %.1fs: %s", what, pause, exc)
            await asyncio.sleep(pause)
            pause = min(pause * 2, max_s)
