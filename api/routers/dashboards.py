"""The company's dashboards as data: the saved SQL Grafana also shows, run for the caller's company only, so
`cda dashboard` can draw them without a database of its own (chDB is held by the API's process)."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.deps import CompanyDep, ContextDep
from api.schemas.common import ERRORS
from api.schemas.dashboards import Cell, DashboardPanel, Dashboards
from projections.queries import dashboard, dashboard_queries
from projections.store import ProjectionStore

router = APIRouter(prefix="/company-automation", tags=["dashboards"], responses=ERRORS)


def _cell(value: Any) -> Cell:
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return stamp.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def _title(sql: str, name: str) -> str:
    first = sql.lstrip().splitlines()[0] if sql.strip() else ""
    return first.removeprefix("--").strip().rstrip(".") if first.startswith("--") else name.replace("_", " ")


def panels(store: ProjectionStore, company_id: str) -> list[DashboardPanel]:
    """Every saved dashboard query for one company (never the all-companies form: the company is always named)."""
    out = []
    for name, sql in dashboard_queries().items():
        rows = dashboard(store, name, company_id)
        columns = list(rows[0]) if rows else []
        out.append(DashboardPanel(name=name, title=_title(sql, name), columns=columns,
                                  rows=[[_cell(row[c]) for c in columns] for row in rows]))
    return out


@router.get("/dashboards", response_model=Dashboards, summary="The company's dashboards (the saved dashboard SQL)")
async def get_dashboards(caller: CompanyDep, ctx: ContextDep) -> Dashboards:
    """Jobs by status over time, job latency p50/p95, tool-call errors per tool, adapters with their metrics."""
    return Dashboards(company_id=caller.company_id, panels=await run_in_threadpool(panels, ctx.store, caller.company_id))
