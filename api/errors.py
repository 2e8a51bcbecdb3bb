"""Every failure the API answers, as one JSON shape `{"error": ..., "detail": [...]}` naming the field or reason.

Bad input is a 4xx and produces nothing; the broker or the store being down is a 503 with `Retry-After`
(the client may try again, nothing was half-done); a foreign id is a 404 exactly like a missing one.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import CdaError, is_transient
from topics.errors import EventValidationError

log = logging.getLogger(__name__)


class ApiError(CdaError):
    """An answer other than success: its status, the reason in words, and headers (Retry-After...)."""

    def __init__(self, status: int, error: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.headers = status, error, headers or {}


def not_found(kind: str, name: str) -> ApiError:
    """The same answer for a resource that does not exist and one of another company."""
    return ApiError(404, f"no {kind} {name!r}")


def _body(error: str, detail: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"error": error, "detail": detail or []}


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(_body(exc.error), exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [{"field": _field(e.get("loc", ())), "message": str(e.get("msg", "")), "type": str(e.get("type", ""))}
                  for e in exc.errors()]
        first = detail[0] if detail else {"field": "body", "message": "invalid request"}
        return JSONResponse(_body(f"{first['field']}: {first['message']}", detail), 422)

    @app.exception_handler(EventValidationError)
    async def _contract(_: Request, exc: EventValidationError) -> JSONResponse:
        return JSONResponse(_body(f"{exc.path}: {exc.message}", [{"field": exc.path, "message": exc.message,
                                                                  "type": "contract"}]), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in error:  # FastAPI's words when json.loads gives up
            error = "body: not JSON this server reads (nested too deeply, or a number with too many digits)"
        return JSONResponse(_body(error), exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(CdaError)
    async def _cda(_: Request, exc: CdaError) -> JSONResponse:
        if is_transient(exc):
            log.warning("answering 503: %s", exc)
            return JSONResponse(_body(f"temporarily unavailable: {exc}"), 503, headers={"Retry-After": "1"})
        log.error("request failed: %s", exc)
        return JSONResponse(_body(f"{type(exc).__name__}: {exc}"), 500)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse(_body(f"internal error ({type(exc).__name__})"), 500)
