"""Following the demo's adapter training through the API, with a progress bar (steps, loss, phase) in a
terminal and a line every 50 steps elsewhere."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cda.demo_errors import DemoError


def follow_training(console: Console, get: Callable[[str], Any], url: str, timeout_s: float) -> dict[str, Any]:
    """The training run at `url` (its API path got through `get`) shown as a progress bar with the loss, until it
    ends; the run as the API last answered it, or `DemoError` when it did not end within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    columns = (TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("steps  loss {task.fields[loss]}"),
               TextColumn("{task.fields[phase]}"), TimeElapsedColumn())
    last_shown = -1
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("train", total=None, loss="-", phase="queued")
        while True:
            run = get(urlsplit(url).path)
            if run["status"] not in ("requested", "training"):
                bar.update(task, phase=run["status"], completed=run.get("total_steps") or run.get("step") or 0)
                return dict(run)
            step, total = run.get("step") or 0, run.get("total_steps")
            phase = "evaluating" if total and step >= total else run["status"]
            loss = f"{run['loss']:.3f}" if run.get("loss") is not None else "-"
            bar.update(task, total=total, completed=step, loss=loss, phase=phase)
            if not console.is_terminal and step // 50 != last_shown and total:
                last_shown = step // 50
                console.print(f"      step {step}/{total} loss {loss}")
            if time.monotonic() > deadline:
                raise DemoError(f"training did not end within {timeout_s:.0f}s: {run}")
            time.sleep(1.0)
