"""Headless Chromium (Debian's `chromium`) for the dashboard page: a screenshot and the DOM after scripts ran."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--virtual-time-budget=10000")


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (bash scripts/dev.sh setup installs it)")
    return found


def _run(page: Path, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="cda-chromium-") as profile:
        return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()],
                              capture_output=True, text=True, timeout=timeout_s)


def screenshot(page: Path, target: Path, width: int, height: int) -> Path:
    done = _run(page, f"--screenshot={target}", f"--window-size={width},{height}")
    assert target.exists(), f"chromium wrote no screenshot: {done.stderr[-2000:]}"
    return target


def dump_dom(page: Path, width: int, height: int) -> str:
    done = _run(page, "--dump-dom", f"--window-size={width},{height}")
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    return done.stdout


def assert_dashboard_drawn(page: Path, body: dict[str, object], workdir: Path, min_colored: int = 400) -> None:
    """Every panel of `body` is a chart in the page: in the DOM, plotly drew its bars (`data-drawn`), and the
    panel's own values (tools, versions, statuses) are written in the SVG; on the screenshot, each chart's area
    holds coloured pixels (bars), not a blank box."""
    import re

    from PIL import Image

    from cda.dashboard import CHART_HEIGHT, CHART_WIDTH, HEADER_HEIGHT, ordered, records

    panels = ordered(body)  # type: ignore[arg-type]
    width, height = CHART_WIDTH + 40, HEADER_HEIGHT + CHART_HEIGHT * len(panels) + 40
    dom = dump_dom(page, width, height)
    for panel in panels:
        name = panel["name"]
        start = dom.index(f'id="chart-{name}"')
        end = min([dom.index(f'id="chart-{p["name"]}"') for p in panels if dom.index(f'id="chart-{p["name"]}"') > start],
                  default=len(dom))
        chart = dom[start:end]
        drawn = re.search(r'data-drawn="(\d+)"', dom[start - 200:start + 400])
        assert drawn and int(drawn.group(1)) > 0, f"{name}: plotly drew no bars"
        assert "main-svg" in chart, f"{name}: no SVG in the chart"
        rows = records(panel)
        assert rows, f"{name}: the panel has no rows to draw"
        for row in rows:
            label = {"tool_error_rate": row.get("tool_name"), "adapters_by_company": str(row.get("version", ""))[:10],
                     "jobs_by_status_over_time": row.get("status"), "job_latency_percentiles": row.get("company_id")}.get(name)
            if label:
                assert label in chart, f"{name}: {label!r} is not written in the chart"
    shot = Image.open(screenshot(page, workdir / "dashboard.png", width, height)).convert("RGB")
    for i, panel in enumerate(panels):
        top = HEADER_HEIGHT + i * CHART_HEIGHT
        area = shot.crop((0, top, CHART_WIDTH, top + CHART_HEIGHT))
        pixels = getattr(area, "get_flattened_data", area.getdata)()  # Pillow 13 renamed getdata
        colored = sum(1 for r, g, b in pixels if max(r, g, b) - min(r, g, b) > 60)
        assert colored >= min_colored, f"{panel['name']}: {colored} coloured pixels in its area of the screenshot"
