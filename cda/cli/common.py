"""What every command shares: settings, consoles on stdout/stderr, and clear failures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from core.errors import CdaError
from core.settings import Settings, get_settings
from topics.events import Event
from topics.producer import EventProducer

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)


def settings() -> Settings:
    return get_settings()


@contextmanager
def failing_clearly() -> Iterator[None]:
    """Turn the project's errors into one red line on stderr and exit code 1, instead of a traceback."""
    try:
        yield
    except (CdaError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


def progress_bar(description: str) -> Progress:
    """A progress bar on stderr, so that stdout stays clean for JSON lines."""
    return Progress(
        TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, transient=True,
    )


def produce(config: Settings, events: list[Event], tombstones: list[Event] | None = None) -> None:
    """Produce `events`, then a tombstone for each of `tombstones`' keys, once the broker is known to answer
    (a command fails at once with the address rather than after its delivery bound)."""
    with EventProducer(config) as producer:
        producer.check_reachable()
        for event in events:
            producer.produce(event)
        for event in tombstones or []:
            producer.tombstone(event)
