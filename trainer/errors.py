"""Errors of the trainer, under the one root `CdaError`: a request the trainer refuses names its field; a
request another worker is training is busy (transient: it is asked again later, never committed)."""

from __future__ import annotations

from core.errors import CdaError, TransientError


class TrainerError(CdaError):
    """Base of the trainer's own errors."""


class BadRequest(TrainerError):
    """The request asks for something the trainer will not do (a value out of bounds, a missing file)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class RequestBusy(TrainerError, TransientError):
    """Another worker holds this request's work folder (it took the request while this one was away)."""
