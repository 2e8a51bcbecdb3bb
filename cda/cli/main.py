"""The `cda` command: broker, topics, events in and out, replay, and the demo job."""

from __future__ import annotations

import typer
from rich.table import Column, Table

from cda.cli import (
    agents_cmd,
    api_cmd,
    companies_cmd,
    dead_letters_cmd,
    events_cmd,
    example_api_cmd,
    inference_cmd,
    kafka_cmd,
    projections_cmd,
    tools_cmd,
    topics_cmd,
    trainer_cmd,
)
from cda.cli.common import failing_clearly, out, settings
from topics.broker import from_settings

app = typer.Typer(help="cda — Company Data Automation.", no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(kafka_cmd.app, name="kafka")
app.add_typer(topics_cmd.app, name="topics")
app.add_typer(projections_cmd.app, name="projections")
app.add_typer(inference_cmd.model_app, name="model")
app.add_typer(inference_cmd.app, name="inference")
app.add_typer(trainer_cmd.app, name="trainer")
app.add_typer(dead_letters_cmd.app, name="dead-letters")
app.add_typer(agents_cmd.app, name="agents")
app.add_typer(agents_cmd.jobs_app, name="jobs")
app.command()(agents_cmd.process)
app.add_typer(tools_cmd.app, name="tools")
app.add_typer(example_api_cmd.app, name="example-api")
app.add_typer(api_cmd.app, name="api")
app.add_typer(companies_cmd.app, name="companies")
app.command()(trainer_cmd.train)
app.command()(trainer_cmd.adapters)
app.command()(projections_cmd.query)
app.command()(events_cmd.produce)
app.command()(events_cmd.consume)
app.command()(events_cmd.replay)


@app.command()
def demo(start_kafka: bool = typer.Option(True, help="Start the local broker when nothing answers.")) -> None:
    """The main job on the embedded defaults: Kafka up, topics applied, sample company events through it."""
    from cda.demo import fold_demo, run_demo

    with failing_clearly():
        config = settings()
        broker = from_settings(config)
        if start_kafka and config.kafka_bootstrap == broker.bootstrap and not broker.answers():
            out.print(f"starting the local Kafka broker on {broker.bootstrap} ...")
            broker.start()
        received = run_demo(config)
        jobs = fold_demo(config, received)
    table = Table("company", Column("topic", no_wrap=True), "at", Column("event", no_wrap=True), "detail")
    for r in received:
        detail = r.event.data.get("tool_name") or r.event.data.get("job_id") or ""
        table.add_row(r.event.company_id, r.topic, f"{r.partition}@{r.offset}", r.event.type, str(detail))
    out.print(table)
    out.print(f"{len(received)} events produced as Avro and read back from {config.kafka_bootstrap}")
    view = Table("company", "job", "status", "steps", "tool calls", "latency ms", title="company_automation_jobs (ClickHouse)")
    for row in jobs:
        view.add_row(str(row["company_id"]), str(row["job_id"]), str(row["status"]), str(row["steps"]),
                     str(row["tool_calls"]), f"{row['latency_ms']:.0f}")
    out.print(view)
    out.print(f"{len(jobs)} jobs folded into {config.clickhouse_dsn} (database {config.clickhouse_database})")


if __name__ == "__main__":
    app()
