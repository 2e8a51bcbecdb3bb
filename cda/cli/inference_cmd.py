"""`cda model init-tiny` and `cda inference serve | status`: the base model and the multi-LoRA server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import typer

from cda.cli.common import err, failing_clearly, out, settings
from inference.errors import InferenceError
from topics.credentials import as_part
from trainer.tiny_model import DEFAULT_PRETRAIN_STEPS

model_app = typer.Typer(help="The base model.", no_args_is_help=True)

app = typer.Typer(help="The vLLM multi-LoRA server and its gateway.", no_args_is_help=True)


@model_app.command("init-tiny")
def init_tiny(
    path: Path | None = typer.Option(None, help="Where to write it; default <CDA_HOME>/models/tiny."),
    force: bool = typer.Option(False, help="Rebuild even when it exists."),
    pretrain_steps: int = typer.Option(DEFAULT_PRETRAIN_STEPS, help="Steps of pretraining on generic tool calls (0: random weights)."),
) -> None:
    """Build the tiny Llama-style base model locally: tokenizer trained on local text, seeded weights,
    then pretrained on a generic world of tool calls so company adapters have something to build on."""
    from trainer.tiny_model import build

    target = path or Path(settings().base_model_path)
    out.print(f"tiny model in {build(target, force=force, pretrain_steps=pretrain_steps)}")


@app.command()
def serve(external: bool = typer.Option(False, help="Use a vLLM server already running at CDA_VLLM_URL.")) -> None:
    """Start vLLM (base model, runtime LoRA loading), the adapter lifecycle and the gateway; run until stopped."""
    from inference.service import InferenceService

    with failing_clearly():
        try:
            config = as_part(settings(), "inference")
            err.print(f"serving {config.base_model_path} via {config.vllm_url}; gateway on {config.inference_url}")
            InferenceService(config, manage_server=not external).serve()
        except InferenceError as exc:
            raise ValueError(str(exc)) from exc


@app.command()
def status() -> None:
    """The gateway's readiness and each company's active adapter; exit 1 when not ready."""
    config = settings()
    try:
        ready = httpx.get(f"{config.inference_url}/health/ready", timeout=5)
        adapters = httpx.get(f"{config.inference_url}/v1/adapters", timeout=5).json()
    except httpx.HTTPError as exc:
        err.print(f"[red]error:[/red] inference gateway at {config.inference_url} unreachable: {exc}")
        raise typer.Exit(1) from None
    out.print(json.dumps({"health": ready.json(), "adapters": adapters}, indent=2))
    if ready.status_code != 200:
        raise typer.Exit(1)


@app.command("registry")
def registry(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8040, help="Port to listen on."),
    root: Path | None = typer.Option(None, help="Where archives are kept; default <CDA_HOME>/adapter-registry."),
) -> None:
    """Serve the HTTP adapter registry: the trainer publishes adapters to it (CDA_ADAPTER_REGISTRY_URL), inference
    downloads them, checks their sha256 and loads them; the two then share no disk. Writes need the token
    (CDA_ADAPTER_REGISTRY_TOKEN) when one is set."""
    import uvicorn

    from inference.registry_app import create_registry_app

    config = settings()
    folder = root or config.home / "adapter-registry"
    token = config.adapter_registry_token.get_secret_value() if config.adapter_registry_token else None
    if token is None and host not in ("127.0.0.1", "localhost", "::1"):
        err.print("[red]error:[/red] a registry on a public address needs CDA_ADAPTER_REGISTRY_TOKEN")
        raise typer.Exit(1)
    err.print(f"adapter registry on http://{host}:{port} (archives in {folder})")
    uvicorn.run(create_registry_app(folder, token), host=host, port=port, log_level="warning")
