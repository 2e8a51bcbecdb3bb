"""`cda api serve`: the public REST API (with the embedded store, the projections run in the same process)."""

from __future__ import annotations

import typer

from cda.cli.common import err, failing_clearly, settings
from topics.credentials import as_part

app = typer.Typer(help="The public REST API.", no_args_is_help=True)


@app.command("serve")
def serve(host: str | None = typer.Option(None, help="Listen address (default CDA_API_HOST)."),
          port: int | None = typer.Option(None, help="Port (default CDA_API_PORT).")) -> None:
    """Serve the API until Ctrl-C / SIGTERM; OpenAPI at /docs."""
    from api.server import serve as run

    with failing_clearly():
        config = settings()
        config = type(config).model_validate({**config.model_dump(), **{k: v for k, v in (("api_host", host), ("api_port", port))
                                                                        if v is not None}})
        config = as_part(config, "api")
        embedded = config.clickhouse_url is None and config.api_embedded_projections
        err.print(f"cda API on http://{config.api_host}:{config.api_port} (docs at /docs); store {config.clickhouse_dsn}"
                  + (" with the projections in this process" if embedded else ""))
        run(config)
