"""Reading positions: times as the CLI accepts them, and what each position means."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from topics.catalog import topic
from topics.events import Event
from topics.positions import Position, parse_time

NOW = datetime(2026, 11, 24, 12, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-24T10:00:00Z", datetime(2026, 11, 24, 10, tzinfo=timezone.utc)),
        ("2026-11-24T10:00:00", datetime(2026, 11, 24, 10, tzinfo=timezone.utc)),
        ("15m", NOW - timedelta(minutes=15)),
        ("-2h", NOW - timedelta(hours=2)),
        ("1d", NOW - timedelta(days=1)),
        ("1795516272767", datetime.fromtimestamp(1795516272.767, tz=timezone.utc)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    assert parse_time(text, now=NOW) == expected


def test_unreadable_time_says_what_is_accepted() -> None:
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_time("yesterday")


def test_negative_offsets_are_refused() -> None:
    with pytest.raises(ValueError, match="offset"):
        Position.at_offset(-1)


def test_keys_put_a_company_first_and_entities_of_compacted_topics_after() -> None:
    tool = Event.new("tool_registered", "acme", tool_name="invoice", description="d", parameters_schema_json="{}", url="http://127.0.0.1:9/u")
    job = Event.new("job_accepted", "acme", job_id="j", request_id="r", task="t")
    assert topic("company_tools").key_for(tool) == b"acme/invoice"
    assert topic("company_automation_jobs").key_for(job) == b"acme"
