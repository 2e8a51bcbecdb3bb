"""The `cda` command: broker, topics, events in and out, replay, every part (`cda up`), the demo and dashboards."""

from __future__ import annotations

import typer

from cda.cli import (
    agents_cmd,
    api_cmd,
    companies_cmd,
    dead_letters_cmd,
    demo_cmd,
    events_cmd,
    example_api_cmd,
    inference_cmd,
    kafka_cmd,
    memory_cmd,
    projections_cmd,
    tools_cmd,
    topics_cmd,
    trainer_cmd,
    up_cmd,
)

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
app.add_typer(memory_cmd.app, name="memory")
app.add_typer(memory_cmd.session_app, name="session")
app.command()(trainer_cmd.train)
app.command()(trainer_cmd.adapters)
app.command()(projections_cmd.query)
app.command()(events_cmd.produce)
app.command()(events_cmd.consume)
app.command()(events_cmd.replay)
app.command()(up_cmd.up)
app.command()(up_cmd.status)
app.command()(demo_cmd.demo)
app.command()(demo_cmd.dashboard)


if __name__ == "__main__":
    app()
