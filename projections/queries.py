"""Named reads of the views: the `cda query` listings and the dashboard SQL saved in `dashboards/`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from projections.store import ProjectionStore

DASHBOARD_DIR = Path(__file__).parent / "dashboards"

LISTINGS: dict[str, str] = {
    "jobs": "SELECT company_id, job_id, status, steps, tool_calls, adapter_version, model, latency_ms, error, accepted_at "
            "FROM company_automation_jobs WHERE company_id = {company:String} ORDER BY accepted_at, job_id",
    "tools": "SELECT company_id, tool_name, method, url, secret_ref, timeout_ms, updated_at "
             "FROM company_tools WHERE company_id = {company:String} ORDER BY tool_name",
    "adapters": "SELECT company_id, request_id, version, status, active, base_model, rank, eval_metrics, created_at, "
                "ready_at, activated_at, error_kind, reason "
                "FROM lora_adapters WHERE company_id = {company:String} ORDER BY created_at, request_id",
    "tool-calls": "SELECT company_id, job_id, call_id, attempt, tool_name, status, status_code, latency_ms, error "
                  "FROM tool_calls WHERE company_id = {company:String} ORDER BY requested_at, job_id, call_id, attempt",
    "memory": "SELECT company_id, entry_id, kind, content, tags, updated_at "
              "FROM company_memory WHERE company_id = {company:String} ORDER BY entry_id",
}


def listing_sql(name: str) -> str:
    """The SQL of a listing (its one parameter: `company`)."""
    if name not in LISTINGS:
        raise ValueError(f"unknown listing {name!r}; known: {', '.join(LISTINGS)}")
    return LISTINGS[name]


def listing(store: ProjectionStore, name: str, company: str) -> list[dict[str, Any]]:
    """One company's rows of a view; a company never sees another's."""
    return store.query_dicts(listing_sql(name), {"company": company})


def dashboard_queries() -> dict[str, str]:
    """The saved dashboard SQL by name (file stem)."""
    return {p.stem: p.read_text() for p in sorted(DASHBOARD_DIR.glob("*.sql"))}


def dashboard(store: ProjectionStore, name: str, company: str = "") -> list[dict[str, Any]]:
    queries = dashboard_queries()
    if name not in queries:
        raise ValueError(f"unknown dashboard query {name!r}; known: {', '.join(queries)}")
    return store.query_dicts(queries[name], {"company": company})
