"""`cda dead-letters list | redrive`: see what no consumer could process, and drive it again."""

from __future__ import annotations

import typer
from rich.table import Column, Table

from cda.cli.common import err, failing_clearly, out, settings
from topics.positions import Position, parse_time
from topics.redrive import DeadLetterFilter, dead_letters, redrive

app = typer.Typer(help="Records no consumer could process, with the reason; re-drive them.", no_args_is_help=True)


def _filters(topic: str | None, group: str | None, error_type: str | None, company: str | None) -> DeadLetterFilter:
    return DeadLetterFilter(source_topic=topic, consumer_group=group, error_type=error_type, company_id=company)


def _start(since: str | None, offset: int | None) -> Position:
    if since is not None and offset is not None:
        raise ValueError("give --since or --offset, not both")
    if offset is not None:
        return Position.at_offset(offset)
    return Position.at_time(parse_time(since)) if since else Position.beginning()


TopicOpt = typer.Option(None, "--topic", help="Only dead letters from this catalog topic.")
GroupOpt = typer.Option(None, "--group", help="Only those this consumer group gave up on.")
ErrorOpt = typer.Option(None, "--error-type", help="Only this error class (e.g. SerializationError).")
CompanyOpt = typer.Option(None, "--company", help="Only this company's.")
SinceOpt = typer.Option(None, "--since", help="From this time (ISO-8601, epoch ms, or 15m/2h/1d ago).")
OffsetOpt = typer.Option(None, "--offset", help="From this offset of the dead-letter topic.")


@app.command("list")
def list_(topic: str | None = TopicOpt, group: str | None = GroupOpt, error_type: str | None = ErrorOpt,
          company: str | None = CompanyOpt, since: str | None = SinceOpt, offset: int | None = OffsetOpt) -> None:
    """Show dead letters: where each record came from, who gave up on it, and why."""
    with failing_clearly():
        config = settings()
        table = Table("offset", "company", Column("source", no_wrap=True), "group", "error", "reason", "bytes")
        shown = 0
        for at, letter in dead_letters(config, _start(since, offset), _filters(topic, group, error_type, company)):
            source = f"{str(letter['source_topic']).removeprefix(config.topic_prefix)}[{letter['source_partition']}]" \
                     f"@{letter['source_offset']}"
            size = letter.data.get("payload_size")
            table.add_row(str(at), letter.company_id, source, str(letter.data.get("consumer_group") or ""),
                          str(letter["error_type"]), str(letter["reason"])[:160],
                          "" if size is None else str(size) + (" (excerpt)" if letter.data.get("payload_truncated") else ""))
            shown += 1
    out.print(table)
    err.print(f"{shown} dead letter(s)")


@app.command("redrive")
def redrive_(topic: str | None = TopicOpt, group: str | None = GroupOpt, error_type: str | None = ErrorOpt,
             company: str | None = CompanyOpt, since: str | None = SinceOpt, offset: int | None = OffsetOpt) -> None:
    """Produce the matching dead-lettered records again, unchanged, to the topics they came from."""
    with failing_clearly():
        count = redrive(settings(), _start(since, offset), _filters(topic, group, error_type, company))
    out.print(f"re-drove {count} record(s) to their source topics")
