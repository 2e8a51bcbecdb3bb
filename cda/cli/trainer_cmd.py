"""`cda trainer run`, `cda train` and `cda adapters`: company adapters trained, followed and listed."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from pathlib import Path

import typer
from rich.table import Table

from cda.cli.common import err, failing_clearly, out, progress_bar, settings
from topics.consumer import EventConsumer
from topics.events import Event
from topics.positions import Position
from topics.producer import EventProducer

app = typer.Typer(help="The trainer worker.", no_args_is_help=True)


@app.command()
def run(seconds: float | None = typer.Option(None, help="Stop after this long (default: until Ctrl-C / SIGTERM).")) -> None:
    """Consume `lora_training_requests`: train, evaluate, store and announce adapters."""
    from trainer.worker import TrainerWorker

    with failing_clearly():
        worker = TrainerWorker(settings())
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        if seconds:
            threading.Timer(seconds, stop.set).start()
        err.print(f"trainer consuming lora_training_requests on {worker.settings.kafka_bootstrap}")
        try:
            worker.run(stop)
        except KeyboardInterrupt:
            stop.set()


def _read_examples(path: Path) -> list[dict[str, str]]:
    examples = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            examples.append({"task": str(raw["task"]), "payload_json": json.dumps(raw["data"]),
                             "tool_name": str(raw["tool"]), "arguments_json": json.dumps(raw["arguments"])})
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: expected {{task, data, tool, arguments}}: {exc}") from None
    return examples


def train(
    company: str = typer.Option(..., "--company", help="The company the adapter is for."),
    examples: Path | None = typer.Option(None, "--examples", help="JSON lines of {task, data, tool, arguments}."),
    from_history: bool = typer.Option(False, "--from-history", help="Use the company's completed jobs instead."),
    method: str = typer.Option("LORA", help="LORA, or QLORA (CUDA only)."),
    no_fallback: bool = typer.Option(False, "--no-fallback", help="Refuse rather than fall back from QLoRA to LoRA."),
    force: bool = typer.Option(False, help="Announce the adapter even if it does not beat the current one."),
    rank: int | None = typer.Option(None, help="LoRA rank."),
    steps: int | None = typer.Option(None, help="Training steps."),
    follow: bool = typer.Option(True, help="Follow progress until the request ends."),
    timeout: float = typer.Option(3600, help="Seconds to follow before giving up."),
) -> None:
    """Produce a training request and follow its progress with a progress bar."""
    with failing_clearly():
        if (examples is None) == (not from_history):
            raise ValueError("give --examples FILE or --from-history")
        config = settings()
        request_id = str(uuid.uuid4())
        request = Event.new("lora_training_requested", company, request_id=request_id, base_model=config.base_model_path,
                            source="FROM_HISTORY" if from_history else "INLINE",
                            examples=_read_examples(examples) if examples else [], method=method.upper(),
                            allow_fallback=not no_fallback, force=force, rank=rank, max_steps=steps)
        with EventProducer(config) as producer:
            producer.produce(request)
        out.print(f"training request {request_id} for {company}")
        if follow:
            _follow(company, request_id, timeout)


def _follow(company: str, request_id: str, timeout: float) -> None:
    config = settings()
    deadline = time.monotonic() + timeout
    with EventConsumer(config, f"cda-train-follow-{uuid.uuid4()}", **{"auto.offset.reset": "latest"}) as consumer:
        consumer.subscribe(["lora_training_status", "lora_adapter_ready"])
        with progress_bar("training") as bar:
            task = bar.add_task("train", total=None)
            while time.monotonic() < deadline:
                for received in consumer.poll(0.5):
                    event = received.event
                    if event.company_id != company or event.data.get("request_id") != request_id:
                        continue
                    if event.type == "training_progress":
                        bar.update(task, completed=event["step"], total=event["total_steps"],
                                   description=f"{event['phase']} loss={event['loss'] or 0:.3f}")
                    elif event.type == "lora_adapter_ready":
                        bar.stop()
                        out.print(f"[green]ready[/green] version {event['version']} metrics {dict(event['metrics'])}")
                        return
                    elif event.type in ("training_rejected", "training_failed"):
                        bar.stop()
                        out.print(f"[yellow]{event.type}[/yellow] " + json.dumps({k: v for k, v in event.to_json().items()
                                                                                    if k not in ("event_id", "type")}))
                        raise typer.Exit(1)
    err.print(f"[red]error:[/red] no outcome for request {request_id} within {timeout:.0f}s")
    raise typer.Exit(1)


def adapters(company: str = typer.Option(..., "--company", help="The company whose adapters to list.")) -> None:
    """A company's adapter versions in the registry, with their metrics; the active one is marked."""
    from trainer.registry import LocalAdapterRegistry

    registry = LocalAdapterRegistry(settings().home / "adapters")
    versions = registry.list(company)
    if not versions:
        out.print(f"no adapters for company {company}")
        return
    active = registry.active(company)
    table = Table("version", "active", "created", "rank", "exact_match", "baseline", "json_valid", "dataset", "request")
    for v in versions:
        m = v.metrics
        table.add_row(v.version, "*" if active and active.version == v.version else "", v.created_at[:19], str(v.rank),
                      f"{m.get('exact_match', 0):.2f}", f"{m.get('baseline_exact_match', 0):.2f}",
                      f"{m.get('json_valid', 0):.2f}", v.dataset_hash[:10], v.request_id[:8])
    out.print(table)
