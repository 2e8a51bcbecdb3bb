"""The company's dashboards: the rows of each saved dashboard query (`projections/dashboards/*.sql`)."""

from __future__ import annotations

from pydantic import BaseModel, Field

Cell = str | int | float | bool | None


class DashboardPanel(BaseModel):
    name: str = Field(description="The saved query's file name without .sql, e.g. job_latency_percentiles.")
    title: str = Field(description="What the panel shows (the query's first comment line).")
    columns: list[str]
    rows: list[list[Cell]] = Field(description="Times are RFC 3339 strings in UTC.")


class Dashboards(BaseModel):
    company_id: str
    panels: list[DashboardPanel]
