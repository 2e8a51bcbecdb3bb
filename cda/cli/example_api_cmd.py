"""`cda example-api serve | count`: the demo company's API, for the demo and for trying the agents by hand."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx
import typer

from cda.cli.common import err, failing_clearly, out, settings
from core.retry import RetryPolicy, http_transient, raise_for_retry

app = typer.Typer(help="The demo company acme's API: its operations are acme's tools.", no_args_is_help=True)


@app.command("serve")
def serve(host: str | None = typer.Option(None, help="Address to listen on; default the host of CDA_EXAMPLE_API_URL."),
          port: int | None = typer.Option(None, help="Port; default the port of CDA_EXAMPLE_API_URL (8030)."),
          db: Path | None = typer.Option(None, help="SQLite file of its effects; default <home>/example-api/acme.sqlite3.")) -> None:
    """Serve acme's API in the foreground (Ctrl-C stops it); onboard it with
    `cda tools import --company acme --openapi http://HOST:PORT/openapi.json`."""
    from examples.company_api import default_db
    from examples.company_api import serve as run

    with failing_clearly():
        config = settings()
        configured = urlsplit(config.example_api_url)
        host = host or configured.hostname or "127.0.0.1"
        port = port if port is not None else (configured.port or 8030)
        path = db or default_db(config.home)
        err.print(f"acme's example API on http://{host}:{port} (effects in {path}); "
                  f"its OpenAPI document: http://{host}:{port}/openapi.json")
        run(path, host, port)


@app.command("count")
def count(url: str | None = typer.Option(None, help="The API's base URL; default CDA_EXAMPLE_API_URL."),
          tool: str | None = typer.Option(None, help="Only this tool's.")) -> None:
    """Effects the API caused and calls it received (created, replayed, failed on purpose, invalid)."""
    with failing_clearly():
        base = (url or settings().example_api_url).rstrip("/")

        def attempt(remaining_s: float) -> dict[str, int]:
            response = raise_for_retry(httpx.get(f"{base}/effects/count", params={"tool": tool} if tool else None,
                                                 timeout=min(5.0, remaining_s)))
            response.raise_for_status()
            return dict(response.json())

        try:
            counts = RetryPolicy(attempts=3, deadline_s=10.0).call(attempt, retry_if=http_transient(True))
        except httpx.HTTPError as exc:
            raise ValueError(f"{base}: {exc}") from None
    out.print(" ".join(f"{k}={v}" for k, v in counts.items()))
