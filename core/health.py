"""The one health probe: a GET that answers 200 in time means up; any other answer, or none, means not
(a probe never raises). The supervisor, the API's readiness, the demo, the benchmarks and the vLLM client ask it."""

from __future__ import annotations

from collections.abc import Callable

import httpx


def answers_ok(url: str, timeout_s: float = 2.0) -> bool:
    """True when `GET url` answers 200 within `timeout_s`."""
    try:
        return httpx.get(url, timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def http_ready(url: str, timeout_s: float = 2.0) -> Callable[[], bool]:
    """`answers_ok` on `url` as a readiness check to call again and again."""
    return lambda: answers_ok(url, timeout_s)
