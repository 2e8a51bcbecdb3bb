"""`cda projections` and `cda query` fail with one red line naming what to do, never a traceback, and
`cda projections run` makes a dead runner visible instead of folding nothing in silence."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from typer.testing import CliRunner

from cda.cli.main import app
from core.settings import Settings, get_settings
from projections.store import ProjectionStore
from tests.helpers import free_port
from tests.projections.test_projections import job_story
from topics.connection import topic_name
from topics.producer import EventProducer

Cli = Callable[..., object]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, str]], Cli]]:
    """`cda` with the given CDA_* environment."""
    def with_env(env: dict[str, str]) -> Cli:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("COLUMNS", "400")  # one line stays one line
        get_settings.cache_clear()
        runner = CliRunner()
        return lambda *args: runner.invoke(app, list(args))

    yield with_env
    get_settings.cache_clear()


@pytest.mark.parametrize("args", [("projections", "migrate"), ("projections", "run", "--seconds", "5"),
                                  ("projections", "rebuild", "jobs"), ("query", "jobs", "--company", "acme")],
                         ids=["migrate", "run", "rebuild", "query"])
def test_clickhouse_down_is_one_red_line_naming_what_to_do(cli: Callable[[dict[str, str]], Cli], tmp_path: object,
                                                           args: tuple[str, ...]) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # a closed loopback port: nothing answers
    result = cli({"CDA_CLICKHOUSE_URL": url, "CDA_HOME": str(tmp_path)})(*args)
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    assert isinstance(result.exception, SystemExit)  # type: ignore[attr-defined]
    lines = [line for line in result.output.splitlines() if line.strip()]  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output  # type: ignore[attr-defined]
    assert url in lines[0] and "start it, or set CDA_CLICKHOUSE_URL" in lines[0]
    assert "Traceback" not in result.output  # type: ignore[attr-defined]


@pytest.mark.kafka
def test_a_dead_runner_stops_the_command_with_a_red_line(cli: Callable[[dict[str, str]], Cli], settings: Settings) -> None:
    # the topics were never created: the runner cannot join its group, which no retry will change
    result = cli({"CDA_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "CDA_TOPIC_PREFIX": settings.topic_prefix,
                  "CDA_HOME": str(settings.home), "CDA_CLICKHOUSE_URL": settings.clickhouse_dsn,
                  "CDA_CLICKHOUSE_DATABASE": settings.clickhouse_database})("projections", "run", "jobs", "--seconds", "120")
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    assert "error: projection-jobs stopped" in result.output  # type: ignore[attr-defined]
    assert "cda topics apply" in result.output  # type: ignore[attr-defined]


@pytest.mark.kafka
def test_rebuild_prints_what_it_skipped(cli: Callable[[dict[str, str]], Cli], catalog: Callable[..., Settings],
                                        store: ProjectionStore) -> None:
    settings = catalog("company_automation_jobs", "dead_letters")
    with EventProducer(settings) as producer:
        producer.produce_raw(topic_name(settings, "company_automation_jobs"), b"acme", b"not an event")
        producer.produce_many(job_story("acme", "j1"))
    result = cli({"CDA_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "CDA_TOPIC_PREFIX": settings.topic_prefix,
                  "CDA_HOME": str(settings.home), "CDA_CLICKHOUSE_URL": settings.clickhouse_dsn,
                  "CDA_CLICKHOUSE_DATABASE": settings.clickhouse_database})("projections", "rebuild", "jobs")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "rebuilt job_facts: 9 events read, 8 rows" in result.output  # type: ignore[attr-defined]
    assert "skipped 1 events that gave no row: 1 not an event" in result.output  # type: ignore[attr-defined]
