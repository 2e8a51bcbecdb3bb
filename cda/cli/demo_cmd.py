"""`cda demo` (the seed's workflow through the API of a running stack) and `cda dashboard` (a company's dashboards)."""

from __future__ import annotations

from pathlib import Path

import typer

from cda.cli.common import err, failing_clearly, out, settings


def demo(examples: int = typer.Option(300, help="Examples of acme's data to train its adapter on."),
         steps: int = typer.Option(130, help="Training steps (0: the trainer's defaults fitted to the data, 200 or more; "
                                   "acme's loss is flat after about 40; at 100 a note naming another tool still pulls its bills off)."),
         force: bool = typer.Option(False, "--force", help="Serve the trained adapter even if the gate would refuse it."),
         retrain: bool = typer.Option(False, "--retrain", help="Train again although an adapter is served."),
         invoices: int = typer.Option(6, help="Invoices in the batch (besides a complaint and an address change)."),
         html: Path = typer.Option(Path("dashboard.html"), "--html", help="Where to write the dashboards page."),
         wait: float = typer.Option(300.0, help="Seconds to wait for the stack (cda up) to be ready.")) -> None:
    """The main job, on a stack started by `cda up --example-api`: onboard acme through the API (key, tools from its
    OpenAPI, adapter trained and served), process a batch, show per record the call, the answer and the adapter,
    then the dashboards. A second run reuses the key, the tools and the adapter."""
    from cda.demo import Demo, DemoOptions

    with failing_clearly():
        result = Demo(settings(), out, DemoOptions(examples=examples, steps=steps or None, force=force, retrain=retrain,
                                                   invoices=invoices, html=html,
                                                   stack_timeout_s=wait)).run()
    parts = ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items() if k != "total")
    out.print(f"demo done in {result.seconds['total']:.1f}s ({parts})")


def dashboard(html: Path | None = typer.Option(None, "--html", help="Write the page to this file and exit."),
              company: str = typer.Option("acme", help="Whose key to use when --key is not given (<home>/keys/<company>.key)."),
              key: str | None = typer.Option(None, "--key", help="The company's API key: it decides "
                                             "whose dashboards these are."),
              host: str = typer.Option("127.0.0.1", help="Where to serve the page."),
              port: int = typer.Option(8050, help="Port to serve the page on.")) -> None:
    """A company's dashboards (the saved SQL of projections/dashboards/) as one offline page of plotly charts, asked
    of the API (`cda up` or `cda api serve`): served at http://HOST:PORT/, or written with --html."""
    from cda.dashboard import fetch, render_html, serve, tables
    from cda.key_file import key_path, read_key
    from cda.stack import api_url

    with failing_clearly():
        config = settings()
        key = key or read_key(config, company)
        if not key:
            raise ValueError(f"--key: no key given and none kept in {key_path(config, company)} (cda demo keeps acme's)")
        body = fetch(api_url(config), key)
        if html is not None:
            html.write_text(render_html(body))
            for table in tables(body):
                out.print(table)
            out.print(f"dashboards of {body['company_id']} written to {html}")
            return
        err.print(f"dashboards of {body['company_id']} on http://{host}:{port}/ (each load asks {api_url(config)}); Ctrl-C stops")
        try:
            serve(api_url(config), key, host, port)
        except OSError as exc:
            raise ValueError(f"cannot serve on {host}:{port}: {exc.strerror}") from None
        except KeyboardInterrupt:
            pass
