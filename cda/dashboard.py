"""A company's dashboards without Docker: the saved dashboard SQL (the same Grafana shows), answered by the API for
the company of the key, drawn as plotly charts in one self-contained page (plotly.js embedded: no CDN, works
offline) and as tables in the terminal.

The page has a fixed layout (a header, then one chart per panel, each `CHART_HEIGHT` pixels tall) so that a
screenshot can be checked chart by chart.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from rich.table import Table

from core.errors import CdaError

HEADER_HEIGHT = 80
CHART_HEIGHT = 420
CHART_WIDTH = 1000
PANEL_ORDER = ("jobs_by_status_over_time", "job_latency_percentiles", "tool_error_rate", "adapters_by_company")
STATUS_COLORS = {"completed": "#2ca02c", "failed": "#d62728", "running": "#1f77b4", "accepted": "#9467bd"}


class DashboardError(CdaError):
    """The API could not be asked for the dashboards (not running, or the key is refused)."""


def fetch(api_url: str, key: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """The company's panels from `GET /company-automation/dashboards` (the key decides the company)."""
    try:
        response = httpx.get(f"{api_url.rstrip('/')}/company-automation/dashboards",
                             headers={"Authorization": f"Bearer {key}"}, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise DashboardError(f"the API at {api_url} does not answer ({exc}); start it: cda up (or cda api serve)") from None
    if response.status_code != 200:
        raise DashboardError(f"the API at {api_url} answered {response.status_code}: {response.text[:200]}")
    return dict(response.json())


def ordered(body: dict[str, Any]) -> list[dict[str, Any]]:
    rank = {name: i for i, name in enumerate(PANEL_ORDER)}
    return sorted(body["panels"], key=lambda p: (rank.get(p["name"], len(rank)), p["name"]))


def records(panel: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(zip(panel["columns"], row, strict=True)) for row in panel["rows"]]


def tables(body: dict[str, Any]) -> Iterator[Table]:
    """One terminal table per panel (a panel without rows says so)."""
    for panel in ordered(body):
        table = Table(*(panel["columns"] or ["(no rows yet)"]), title=f"{panel['title']} — {body['company_id']}")
        for row in panel["rows"]:
            table.add_row(*(_short(v) for v in row))
        yield table


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    text = "" if value is None else str(value)
    return text[:19].replace("T", " ") if len(text) >= 19 and text[4:5] == "-" and text[10:11] == "T" else text


def figure(panel: dict[str, Any]) -> Any:
    """The panel as a plotly figure (graph objects only: no pandas needed)."""
    import plotly.graph_objects as go

    rows = records(panel)
    name = panel["name"]
    fig = go.Figure()
    if name == "jobs_by_status_over_time":
        for status in sorted({r["status"] for r in rows}):
            mine = [r for r in rows if r["status"] == status]
            fig.add_bar(x=[r["t"] for r in mine], y=[r["jobs"] for r in mine], name=status,
                        marker_color=STATUS_COLORS.get(status))
        fig.update_layout(barmode="stack", xaxis_title="minute accepted", yaxis_title="jobs")
    elif name == "job_latency_percentiles":
        for label, column, color in (("p50", "p50_ms", "#1f77b4"), ("p95", "p95_ms", "#ff7f0e")):
            fig.add_bar(x=[f"{r['company_id']} ({r['finished_jobs']} jobs)" for r in rows], y=[r[column] for r in rows],
                        name=label, marker_color=color, text=[f"{r[column]:g} ms" for r in rows], textposition="auto")
        fig.update_layout(barmode="group", yaxis_title="job latency (ms)")
    elif name == "tool_error_rate":
        fig.add_bar(x=[r["tool_name"] for r in rows], y=[r["calls"] - r["failed"] for r in rows], name="succeeded",
                    marker_color="#2ca02c")
        fig.add_bar(x=[r["tool_name"] for r in rows], y=[r["failed"] for r in rows], name="failed", marker_color="#d62728",
                    text=[f"{100 * r['error_rate']:.0f}% errors" for r in rows], textposition="outside")
        fig.update_layout(barmode="stack", xaxis_title="tool", yaxis_title="calls")
    elif name == "adapters_by_company":
        labels = [f"{r['version'][:10] or r['status']}{' (active)' if r['active'] else ''}" for r in rows]
        for label, column, color in (("exact match", "exact_match", "#9467bd"), ("valid JSON", "json_valid", "#17becf")):
            fig.add_bar(x=labels, y=[r[column] or 0 for r in rows], name=label, marker_color=color)
        fig.update_layout(barmode="group", xaxis_title="adapter version", yaxis_title="eval metric", yaxis_range=[0, 1.05])
    else:  # a saved query added later: its first numeric column per row
        numeric = [c for c in panel["columns"] if rows and isinstance(rows[0][c], (int, float))]
        if numeric:
            fig.add_bar(x=[str(list(r.values())[0]) for r in rows], y=[r[numeric[0]] for r in rows], name=numeric[0])
    fig.update_layout(title=panel["title"], height=CHART_HEIGHT, width=CHART_WIDTH, margin={"t": 60, "b": 60, "l": 70, "r": 30},
                      template="plotly_white", xaxis_type="category" if name != "jobs_by_status_over_time" else None)
    if not rows:
        fig.add_annotation(text="no rows yet", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    return fig


def render_html(body: dict[str, Any], refresh_s: int | None = None) -> str:
    """One self-contained page: plotly.js inline, one chart per panel, each in `<div id="chart-<name>">`."""
    from plotly.offline import get_plotlyjs

    company = html.escape(body["company_id"])
    charts = []
    for panel in ordered(body):
        div = f"chart-{panel['name']}"
        spec = figure(panel).to_plotly_json()
        charts.append(f'<div class="chart" id="{div}" data-rows="{len(panel["rows"])}"></div>\n'
                      f'<script>Plotly.newPlot({json.dumps(div)}, {json.dumps(spec["data"])}, {json.dumps(spec["layout"])}, '
                      f'{{"staticPlot": false, "displayModeBar": false}}).then(function (gd) {{ gd.setAttribute("data-drawn", '
                      f'String(gd.querySelectorAll(".trace.bars .point").length)); }});</script>')
    refresh = f'<meta http-equiv="refresh" content="{refresh_s}">' if refresh_s else ""
    return (f'<!doctype html><html><head><meta charset="utf-8">{refresh}<title>cda dashboards — {company}</title>'
            f'<style>body{{margin:0;font-family:sans-serif;background:#fff}}'
            f'header{{height:{HEADER_HEIGHT}px;box-sizing:border-box;padding:16px 24px;border-bottom:1px solid #ddd}}'
            f'h1{{margin:0;font-size:22px}} p{{margin:4px 0 0;color:#555;font-size:13px}}'
            f'.chart{{width:{CHART_WIDTH}px;height:{CHART_HEIGHT}px;overflow:hidden}}</style>'
            f'<script>{get_plotlyjs()}</script></head><body>'
            f'<header><h1>cda dashboards — {company}</h1><p>the saved SQL of projections/dashboards/, answered by the '
            f'API for this company\'s key; plotly.js embedded (works offline)</p></header>\n'
            + "\n".join(charts) + "</body></html>")


def serve(api_url: str, key: str, host: str, port: int, refresh_s: int = 15) -> None:
    """Serve the page at http://host:port/ until interrupted; each load asks the API again."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            if self.path not in ("/", "/index.html"):
                self.send_error(404)
                return
            try:
                page, status = render_html(fetch(api_url, key), refresh_s).encode(), 200
            except DashboardError as exc:
                page, status = f"<p>{html.escape(str(exc))}</p>".encode(), 503
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: the page holds no secrets, logs neither
            return

    with ThreadingHTTPServer((host, port), Handler) as server:
        server.serve_forever()
