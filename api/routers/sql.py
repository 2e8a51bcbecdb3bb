"""`POST /admin/sql`: read-only SQL in the process that holds the projection store. With the embedded chDB store
one process owns it, so while `cda up` runs this is how `cda sql` and `cda query` read it. Operator only: the
views hold every company's rows."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.deps import ContextDep, OperatorDep
from api.errors import ApiError
from api.schemas.common import ERRORS
from api.schemas.sql import SqlQuery, SqlResult
from projections.errors import StoreError

router = APIRouter(prefix="/admin", tags=["operator"], responses=ERRORS)


@router.post("/sql", response_model=SqlResult, summary="Run a read-only SQL query against the projection store")
async def run_sql(body: SqlQuery, _: OperatorDep, ctx: ContextDep) -> SqlResult:
    """ClickHouse's `readonly` mode (no write, DDL or SET), `max_rows` rows, `timeout_s` seconds."""
    try:
        columns, rows = await run_in_threadpool(ctx.store.read, body.sql, body.parameters, body.max_rows, body.timeout_s)
    except StoreError as exc:
        raise ApiError(422, f"body.sql: {_reason(str(exc))}") from None
    return SqlResult.of(columns, rows, body.max_rows)


def _reason(text: str) -> str:
    """ClickHouse's own message, without the driver's wrapping."""
    if "readonly mode" in text.lower():
        return "only reads are allowed here (ClickHouse readonly mode)"
    found = text.find("DB::Exception:")
    return text[found + len("DB::Exception:"):].strip()[:500] if found >= 0 else text[:500]
