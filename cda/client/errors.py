"""The errors `cda.client` raises: one type per kind of answer, each with the status and the API's message."""

from __future__ import annotations

from core.errors import CdaError


class AutomationError(CdaError):
    """Base of every error of the client (a `CdaError`, as every failure of cda)."""


class WrongCompany(AutomationError):
    """The company named in a call is not the company the API key belongs to."""


class ApiRefused(AutomationError):
    """The API answered with an error; `status` and `message` are its own (a 4xx names the field at fault)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class Unauthorized(ApiRefused):
    """401: the key is missing, unknown or revoked."""


class InvalidRequest(ApiRefused):
    """422 (or another 4xx but 401/403/404/429): the request itself is wrong; sending it again will not help."""


class NotFound(ApiRefused):
    """404: no such job, training run or adapter version for this company."""


class Unavailable(ApiRefused):
    """429 or 5xx after every retry the client makes (it waits as `Retry-After` says)."""


class TimedOut(AutomationError):
    """A job or training run did not end within the time the caller gave; it may still end later."""

    def __init__(self, what: str, url: str, timeout_s: float) -> None:
        super().__init__(f"{what} did not end within {timeout_s:g}s; read it later at {url}")
        self.url = url
