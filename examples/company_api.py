"""The example company API: a real HTTP service for the demo company `acme`, whose operations are exactly
the tools acme's adapter was trained on (`trainer.synthetic.DEMO_TOOLS`), so that onboarding (`cda tools
import --openapi .../openapi.json`), the bridge and the agents are exercised against a real server.

Each operation validates its JSON body against the tool's schema (422 naming the field), records the
effect in SQLite and answers 201; a repeated `Idempotency-Key` answers the first response again and causes
no second effect. Faults can be staged so that retries and crashes can be tested: per request with the
headers `X-Fail-Times: N` (the first N attempts of the request's idempotency key answer `X-Fail-Status`,
default 503), `X-Slow-Ms: M` (the answer that causes the effect waits M ms: the call took effect but the
caller may time out), or for the next calls of a tool with `POST /control/faults`. `GET /effects` and
`GET /effects/count` say what it did; those and the control endpoints are not in its OpenAPI document,
which holds only the tools.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonschema
import uvicorn
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from jsonschema.protocols import Validator
from pydantic import BaseModel, Field

from core.errors import CdaError
from core.json_schemas import validator as schema_validator
from core.prompts import ToolSpec
from core.workers import wait_until
from examples.store import ANY_TOOL, ExampleStore, Staged
from trainer.synthetic import DEMO_COMPANY, DEMO_TOOLS

MAX_BODY_BYTES = 64_000
MAX_SLOW_MS = 120_000
MAX_KEY_LENGTH = 255
RESULT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {
    "id": {"type": "integer"}, "tool": {"type": "string"}, "ref": {"type": "string"}}, "required": ["id", "tool"]}


class ExampleApiError(CdaError):
    """The example API could not start or answer as asked."""


class FaultPlan(BaseModel):
    """Faults for the next calls of one tool (or of every tool, `*`)."""

    tool: str = ANY_TOOL
    fail_next: int = Field(default=0, ge=0)
    status: int = Field(default=503, ge=400, le=599)
    slow_next: int = Field(default=0, ge=0)
    slow_ms: int = Field(default=0, ge=0, le=MAX_SLOW_MS)


def _error(status: int, loc: list[str | int], msg: str) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": ["body", *loc], "msg": msg}]}, status_code=status)


def _invalid(validator: Validator, body: Any) -> JSONResponse | None:
    """422 naming the field of the first schema violation (the missing or unexpected one, for those errors)."""
    error = jsonschema.exceptions.best_match(validator.iter_errors(body))
    if error is None:
        return None
    loc: list[str | int] = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        loc += [n for n in error.validator_value if n not in error.instance][:1]
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        loc += [n for n in error.instance if n not in allowed][:1]
    return _error(422, loc, error.message)


def _int_header(request: Request, name: str, high: int) -> int:
    raw = request.headers.get(name)
    if raw is None:
        return 0
    if not raw.isdigit() or int(raw) > high:
        raise ValueError(f"header {name}: expected an integer from 0 to {high}, got {raw[:20]!r}")
    return int(raw)


def _staged(request: Request, key: str | None) -> Staged:
    fail_times = _int_header(request, "X-Fail-Times", 1000)
    if fail_times and key is None:
        raise ValueError("header X-Fail-Times counts the attempts of one Idempotency-Key: send one")
    status = _int_header(request, "X-Fail-Status", 599) or 503
    if not 400 <= status <= 599:
        raise ValueError(f"header X-Fail-Status: expected a 4xx or 5xx status, got {status}")
    return Staged(fail_times=fail_times, fail_status=status, slow_ms=_int_header(request, "X-Slow-Ms", MAX_SLOW_MS))


def _key(request: Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= MAX_KEY_LENGTH and key.isprintable()):
        raise ValueError(f"header Idempotency-Key: expected 1 to {MAX_KEY_LENGTH} printable characters")
    return key


def _add_tool(app: FastAPI, store: ExampleStore, tool: ToolSpec) -> None:
    validator = schema_validator(tool.parameters)

    async def operation(request: Request) -> JSONResponse:
        try:
            key = _key(request)
            staged = _staged(request, key)
        except ValueError as exc:
            await run_in_threadpool(store.record_rejected, tool.name, None, 400)
            return JSONResponse({"detail": str(exc)}, status_code=400)
        raw = await request.body()
        try:
            if len(raw) > MAX_BODY_BYTES:
                raise ValueError(f"the body is larger than {MAX_BODY_BYTES} bytes")
            body = json.loads(raw)
        except ValueError as exc:
            await run_in_threadpool(store.record_rejected, tool.name, key, 422)
            return _error(422, [], f"expected a JSON object: {exc}")
        if (invalid := _invalid(validator, body)) is not None:
            await run_in_threadpool(store.record_rejected, tool.name, key, 422)
            return invalid
        outcome = await run_in_threadpool(store.record, tool.name, body, key, staged)
        if outcome.slow_ms:
            await asyncio.sleep(outcome.slow_ms / 1000)
        return JSONResponse(outcome.body, status_code=outcome.status)

    app.add_api_route(
        f"/{tool.name}", operation, methods=["POST"], operation_id=tool.name, summary=tool.description,
        status_code=201, response_class=JSONResponse,
        responses={
            201: {"description": "Recorded; a repeated Idempotency-Key answers the first response again.",
                  "content": {"application/json": {"schema": RESULT_SCHEMA}}},
            422: {"description": "The body does not fit the schema; `detail[0].loc` names the field."},
            503: {"description": "Unavailable (staged on purpose); retry with the same Idempotency-Key."},
        },
        openapi_extra={
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"},
                            "description": "The same key on every retry: the effect happens once."}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": tool.parameters}}},
        },
    )


def create_app(db_path: Path, public_url: str | None = None, tools: tuple[ToolSpec, ...] = DEMO_TOOLS) -> FastAPI:
    """The API over the SQLite file `db_path`; its OpenAPI `servers` entry is `public_url`, else the URL it was
    reached at (so a server bound to 0.0.0.0 still names an address its callers can use)."""
    store = ExampleStore(db_path)
    app = FastAPI(title=f"{DEMO_COMPANY} example API", version="1",
                  description=f"The demo company {DEMO_COMPANY}'s API: each operation is one of its tools.",
                  openapi_url=None, docs_url=None, redoc_url=None)
    app.state.store = store
    for tool in tools:
        _add_tool(app, store, tool)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(request: Request) -> dict[str, Any]:
        document = dict(app.openapi())
        document["servers"] = [{"url": public_url or str(request.base_url).rstrip("/")}]
        return document

    @app.get("/effects", include_in_schema=False)
    def effects(tool: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        return store.effects(tool, min(max(limit, 1), 100_000))

    @app.get("/effects/count", include_in_schema=False)
    def effects_count(tool: str | None = None) -> dict[str, int]:
        return store.counts(tool)

    @app.post("/control/faults", include_in_schema=False)
    def stage_faults(plan: FaultPlan) -> dict[str, Any]:
        store.stage(plan.tool, plan.fail_next, plan.status, plan.slow_next, plan.slow_ms)
        return plan.model_dump()

    @app.delete("/control/faults", include_in_schema=False)
    def clear_faults() -> dict[str, bool]:
        store.clear_faults()
        return {"cleared": True}

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def default_db(home: Path) -> Path:
    return home / "example-api" / f"{DEMO_COMPANY}.sqlite3"


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ExampleApiError(f"the example API cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


@contextmanager
def run_in_thread(db_path: Path, port: int = 0, host: str = "127.0.0.1", start_timeout_s: float = 20.0) -> Iterator[str]:
    """Serve the example API in a background thread for the block (port 0: a free loopback port, bound before
    the server starts so no other process can take it); yields its base URL."""
    sock = _bind(host, port)
    base_url = f"http://{host}:{sock.getsockname()[1]}"
    app = create_app(db_path, base_url)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="example-api", daemon=True)
    thread.start()
    try:
        if not wait_until(lambda: server.started or not thread.is_alive(), start_timeout_s, 0.02) or not server.started:
            raise ExampleApiError(f"the example API did not start on {base_url} within {start_timeout_s:.0f}s")
        yield base_url
    finally:
        server.should_exit = True
        thread.join(start_timeout_s)
        sock.close()
        app.state.store.close()


def serve(db_path: Path, host: str, port: int) -> None:
    """Serve in the foreground until interrupted (`cda example-api serve`)."""
    sock = _bind(host, port)
    app = create_app(db_path)
    try:
        uvicorn.Server(uvicorn.Config(app, log_level="info", lifespan="off")).run(sockets=[sock])
    finally:
        sock.close()
        app.state.store.close()
