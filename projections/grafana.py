"""Writes the Grafana dashboard from the saved dashboard SQL, so the panels never drift from the repo.

    python -m projections.grafana   # rewrites deploy/grafana/dashboards/cda.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from projections.queries import dashboard_queries

DASHBOARD_FILE = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "dashboards" / "cda.json"
DATASOURCE = {"type": "grafana-clickhouse-datasource", "uid": "cda-clickhouse"}
PANELS = (
    ("jobs_by_status_over_time", "Jobs by status over time", "timeseries"),
    ("job_latency_percentiles", "Job latency p50 / p95 (ms)", "table"),
    ("tool_error_rate", "Tool-call error rate per tool", "table"),
    ("adapters_by_company", "Adapters per company with eval metrics", "table"),
)


def grafana_sql(sql: str) -> str:
    """The saved SQL with its `{company:String}` parameter bound to the dashboard's `company` variable."""
    return sql.replace("{company:String}", "'${company}'")


def dashboard_json() -> dict[str, Any]:
    saved = dashboard_queries()
    panels = []
    for i, (name, title, kind) in enumerate(PANELS):
        panels.append({
            "id": i + 1, "type": kind, "title": title,
            "gridPos": {"x": (i % 2) * 12, "y": (i // 2) * 9, "w": 12, "h": 9},
            "datasource": DATASOURCE,
            "targets": [{"refId": "A", "queryType": "sql", "rawSql": grafana_sql(saved[name]),
                         "format": 0 if kind == "timeseries" else 1, "datasource": DATASOURCE,
                         "meta": {"source": f"projections/dashboards/{name}.sql"}}],
        })
    return {
        "uid": "cda-overview", "title": "cda overview", "schemaVersion": 39, "version": 1, "refresh": "10s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{"name": "company", "type": "textbox", "label": "company (empty: all)", "query": "",
                                 "current": {"value": "", "text": ""}}]},
        "panels": panels,
    }


if __name__ == "__main__":
    DASHBOARD_FILE.write_text(json.dumps(dashboard_json(), indent=2) + "\n")
    print(f"wrote {DASHBOARD_FILE}")
