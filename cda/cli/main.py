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
    sql_cmd,
    tools_cmd,
    topics_cmd,
    trainer_cmd,
    up_cmd,
)

app = typer.Typer(help="cda — Company Data Automation.", no_args_is_help=True, pretty_exceptions_enable=False)
GROUPS = {"kafka": kafka_cmd.app, "topics": topics_cmd.app, "projections": projections_cmd.app,
          "model": inference_cmd.model_app, "inference": inference_cmd.app, "trainer": trainer_cmd.app,
          "dead-letters": dead_letters_cmd.app, "agents": agents_cmd.app, "jobs": agents_cmd.jobs_app,
          "tools": tools_cmd.app, "example-api": example_api_cmd.app, "api": api_cmd.app,
          "companies": companies_cmd.app, "memory": memory_cmd.app, "session": memory_cmd.session_app}
COMMANDS = (agents_cmd.process, trainer_cmd.train, trainer_cmd.adapters, projections_cmd.query, events_cmd.produce,
            events_cmd.consume, events_cmd.replay, up_cmd.up, up_cmd.status, demo_cmd.demo,
            sql_cmd.sql)
for name, group in GROUPS.items():
    app.add_typer(group, name=name)
for command in COMMANDS:
    app.command()(command)
app.command()(demo_cmd.dashboard)


if __name__ == "__main__":
    app()
