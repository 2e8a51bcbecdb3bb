"""`cda produce`, `cda consume`, `cda replay`: events in and out of topics as JSON lines."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import IO

import typer

from cda.cli.common import err, failing_clearly, out, progress_bar, settings
from topics.catalog import topic as catalog_topic
from topics.consumer import EventConsumer
from topics.dead_letters import Rejected
from topics.errors import EventValidationError
from topics.events import Event
from topics.positions import Position, parse_time
from topics.producer import EventProducer
from topics.replay import ReplayRange, replay_to_topic, rewind_group


def read_events(topic: str, lines: IO[str]) -> list[Event]:
    """Parse and validate every line before anything is produced; the first bad line names its field."""
    spec = catalog_topic(topic)
    events: list[Event] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {number}: not JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise ValueError(f"line {number}: expected a JSON object, got {type(record).__name__}")
        event_type = record.pop("type", None)
        if event_type is None and len(spec.event_types) == 1:
            event_type = spec.event_types[0]
        if event_type not in spec.event_types:
            raise ValueError(f"line {number}: type: expected one of {', '.join(spec.event_types)} for topic {topic}, got {event_type!r}")
        try:
            events.append(Event.from_fields(event_type, record, json_mode=True))
        except EventValidationError as exc:
            raise ValueError(f"line {number}: {event_type}.{exc.path}: {exc.message}") from None
    return events


def produce(
    topic: str = typer.Argument(..., help="Catalog topic name."),
    file: Path | None = typer.Option(None, "--file", "-f", help="JSON lines file; default stdin."),
) -> None:
    """Validate JSON lines (one event each, with "type" when the topic has several) and produce them as Avro."""
    with failing_clearly():
        if file is not None:
            with file.open() as handle:
                events = read_events(topic, handle)
        else:
            events = read_events(topic, sys.stdin)
        with EventProducer(settings()) as producer:
            producer.check_reachable()
            with progress_bar(f"producing to {topic}") as bar:
                task = bar.add_task("produce", total=len(events))
                for event in events:
                    producer.produce(event)
                    bar.advance(task)
        err.print(f"produced {len(events)} event(s) to {topic}")


class _StderrRejects:
    """`cda consume` only reads: undecodable records are reported, not dead-lettered again."""

    def __init__(self) -> None:
        self.count = 0

    def send(self, rejected: Rejected) -> None:
        self.count += 1
        err.print(f"[yellow]skipped[/yellow] {rejected.topic}/{rejected.partition}@{rejected.offset}: {rejected.reason}")

    def flush(self) -> None:
        return None


def _start(offset: int | None, since: str | None, from_end: bool) -> Position:
    if offset is not None and since is not None:
        raise ValueError("give --offset or --since, not both")
    if offset is not None:
        return Position.at_offset(offset)
    if since is not None:
        return Position.at_time(parse_time(since))
    return Position.end() if from_end else Position.beginning()


def consume(
    topic: str = typer.Argument(..., help="Catalog topic name."),
    offset: int | None = typer.Option(None, help="Start at this offset in every partition."),
    since: str | None = typer.Option(None, help="Start at this time: ISO-8601, epoch ms, or a span ago (15m, 2h)."),
    follow: bool = typer.Option(False, "--follow", help="Keep reading new events instead of stopping at the end."),
    limit: int | None = typer.Option(None, "--max", help="Stop after this many events."),
    positions: bool = typer.Option(False, "--positions", help="Add _partition/_offset/_timestamp to each line."),
) -> None:
    """Print a topic's events as JSON lines: from the beginning (default), an offset or a time, to today's end."""
    with failing_clearly():
        rejects = _StderrRejects()
        with EventConsumer(settings(), f"cda-cli-{uuid.uuid4()}", dead_letters=rejects) as consumer:
            consumer.assign(topic, _start(offset, since, from_end=False), until_end=not follow)
            count = 0
            for received in consumer:
                line = received.event.to_json()
                if positions:
                    line |= {"_partition": received.partition, "_offset": received.offset, "_timestamp": received.timestamp_ms}
                out.print(json.dumps(line), markup=False)
                count += 1
                if limit is not None and count >= limit:
                    break
        err.print(f"{count} event(s) from {topic}" + (f", {rejects.count} skipped" if rejects.count else ""))


def replay(
    source: str = typer.Argument(..., help="Catalog topic to re-read."),
    to_topic: str | None = typer.Option(None, "--to-topic", help="Copy the range into this catalog topic."),
    group: str | None = typer.Option(None, "--group", help="Move this consumer group back to the range's start."),
    offset: int | None = typer.Option(None, help="Range start: this offset in every partition."),
    since: str | None = typer.Option(None, help="Range start: this time (ISO-8601, epoch ms, or 15m/2h/1d ago)."),
    until: str | None = typer.Option(None, help="Range end (exclusive), a time; default: today's end of the topic."),
    until_offset: int | None = typer.Option(None, help="Range end (exclusive), an offset in every partition."),
) -> None:
    """Reprocess a range of a topic: copy it into a target topic, or rewind a consumer group to it."""
    with failing_clearly():
        if (to_topic is None) == (group is None):
            raise ValueError("give exactly one of --to-topic or --group")
        if until is not None and until_offset is not None:
            raise ValueError("give --until or --until-offset, not both")
        stop = Position.at_time(parse_time(until)) if until else (
            Position.at_offset(until_offset) if until_offset is not None else None)
        rng = ReplayRange(source, _start(offset, since, from_end=False), stop)
        if to_topic is not None:
            catalog_topic(to_topic)
            with progress_bar(f"replaying {source} -> {to_topic}") as bar:
                task = bar.add_task("replay", total=None)
                copied = replay_to_topic(settings(), rng, to_topic, lambda done, total: bar.update(task, completed=done, total=total))
            out.print(f"replayed {copied} record(s) from {source} into {to_topic}")
        elif group is not None:
            moved = rewind_group(settings(), group, rng)
            out.print(f"group {group} on {source} now at " + ", ".join(f"p{p}@{o}" for p, o in sorted(moved.items())))
