"""What the demo sent and what became of it: each record with the call the agent made and the right one, and
the table that marks each call right or WRONG."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass
class Record:
    """One record sent and what became of it."""

    job: str
    kind: str
    data: dict[str, Any]
    unit: int = 0
    tool: str = ""
    arguments: Any = None
    answer: str = ""
    status: str = ""
    adapter: str = ""
    expected: tuple[str, dict[str, Any]] | None = None  # the right call, where the demo knows it

    @property
    def right(self) -> bool:
        """The agent called the right tool with exactly the right arguments (whatever the API answered)."""
        return self.expected is not None and (self.tool, self.arguments) == self.expected


@dataclass
class DemoResult:
    company: str
    adapter_version: str | None
    trained: bool
    records: list[Record] = field(default_factory=list)
    dashboards: dict[str, Any] = field(default_factory=dict)
    html: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def show_records(console: Console, records: list[Record]) -> None:
    """The per-record table, each call marked right or WRONG with the expected one, and the count of right calls."""
    table = Table("record", "data", "tool call (the agent's)", "right?", "example API's answer", "adapter",
                  title="per record")
    for r in records:
        call = call_text(r.tool, r.arguments) if r.tool else "-"
        verdict = "[green]right[/green]" if r.right else (
            f"[red]WRONG, expected {call_text(*r.expected)}[/red]" if r.expected else "?")
        style = "green" if r.status == "completed" else "red"
        table.add_row(f"{r.kind} #{r.unit + 1}" if r.kind == "invoice" else r.kind, json.dumps(r.data), call,
                      verdict, f"[{style}]{r.answer}[/{style}]", r.adapter[:16])
    console.print(table)
    right = sum(r.right for r in records)
    done = sum(r.status == "completed" for r in records)
    style = "green" if right == len(records) else "red"
    console.print(f"      [{style}]{right} of {len(records)} right[/{style}] (the right tool with exactly the "
                       f"right arguments); {done} of {len(records)} completed at the example API")


def call_text(tool: str, arguments: Any) -> str:
    return f"{tool}({json.dumps(arguments, separators=(',', ':'), sort_keys=True)})"


def demo_batch(invoices: int) -> list[tuple[str, str, Any]]:
    """The demo's records: (kind, task, data) for a batch of `invoices` invoices, a complaint and an address change."""
    rng = random.Random()
    bills = [{"customer": f"c{rng.randint(100, 999)}", "amount": rng.randint(5, 99)} for _ in range(invoices)]
    return [("invoice", "Bill the customer for the order", {"invoices": bills}),
            ("complaint", "Log this complaint", {"customer": f"c{rng.randint(100, 999)}", "severity": "high"}),
            ("address change", "Update the customer's address",
             {"customer": f"c{rng.randint(100, 999)}", "postcode": f"{rng.randint(1000, 9999)}", "city": "grace"})]
