"""`cda trainer run`, `cda train` and `cda adapters`: company adapters trained, followed, listed and switched."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from pathlib import Path

import typer
from confluent_kafka import TopicPartition
from rich.table import Table

from cda.cli.common import err, failing_clearly, out, progress_bar, settings
from core.settings import Settings
from topics.connection import cluster_metadata, topic_name
from topics.consumer import EventConsumer
from topics.credentials import as_part
from topics.dead_letters import Skipped
from topics.events import Event
from topics.positions import high_watermark
from topics.producer import EventProducer
from trainer.registry import LocalAdapterRegistry
from trainer.served import active_adapter, refusals

app = typer.Typer(help="The trainer worker.", no_args_is_help=True)
FOLLOWED = ("lora_training_status", "lora_adapter_ready")


@app.command()
def run(seconds: float | None = typer.Option(None, help="Stop after this long (default: until Ctrl-C / SIGTERM).")) -> None:
    """Consume `lora_training_requests`: train, evaluate, store and announce adapters."""
    from trainer.worker import TrainerWorker

    with failing_clearly():
        worker = TrainerWorker(as_part(settings(), "trainer"))
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


def _examples_fields(config: Settings, company: str, examples: list[dict[str, str]], request_id: str
                     ) -> dict[str, object]:
    """Inline examples, or a reference to a stored file when they would make a record too large for the broker."""
    from trainer.examples_store import encode_examples, examples_root, store_examples

    size = len(encode_examples(examples))
    if size <= config.trainer_inline_examples_bytes:
        return {"examples": examples}
    ref = store_examples(config, company, examples, request_id)
    out.print(f"{len(examples)} examples ({size / 1e6:.1f} MB) are too large for one record: stored as {ref} "
              f"under {examples_root(config) / company}")
    return {"examples": [], "examples_ref": ref}


def _from_here(consumer: EventConsumer, config: Settings) -> None:
    """Read the followed topics from today's end, taken before the request is produced, so no outcome of the
    request (however fast) can come before the position the follower starts at."""
    partitions: list[TopicPartition] = []
    for name in FOLLOWED:
        topic = topic_name(config, name)
        for p in sorted(cluster_metadata(config, topic=topic).topics[topic].partitions):
            partitions.append(TopicPartition(topic, p, high_watermark(consumer.raw, topic, p, config.kafka_timeout_s)))
    consumer.raw.assign(partitions)


def train(
    company: str = typer.Option(..., "--company", help="The company the adapter is for."),
    examples: Path | None = typer.Option(None, "--examples", help="JSON lines of {task, data, tool, arguments}."),
    from_history: bool = typer.Option(False, "--from-history", help="Use the company's completed jobs instead."),
    method: str = typer.Option("LORA", help="LORA, or QLORA (CUDA only)."),
    no_fallback: bool = typer.Option(False, "--no-fallback", help="Refuse rather than fall back from QLoRA to LoRA."),
    force: bool = typer.Option(False, help="Announce the adapter even if it does not beat the current one."),
    rank: int | None = typer.Option(None, help="LoRA rank."),
    steps: int | None = typer.Option(None, help="Training steps."),
    learning_rate: float | None = typer.Option(None, "--learning-rate", help="Learning rate."),
    max_examples: int | None = typer.Option(None, "--max-examples", help="Use at most this many examples."),
    follow: bool = typer.Option(True, help="Follow progress until the request ends."),
    timeout: float = typer.Option(3600, help="Seconds to follow before giving up."),
) -> None:
    """Produce a training request and follow its progress with a progress bar."""
    with failing_clearly():
        if (examples is None) == (not from_history):
            raise ValueError("give --examples FILE or --from-history")
        config = settings()
        request_id = str(uuid.uuid4())
        inline = _examples_fields(config, company, _read_examples(examples), request_id) if examples else {"examples": []}
        request = Event.new("lora_training_requested", company, request_id=request_id, base_model=config.base_model_path,
                            source="FROM_HISTORY" if from_history else "INLINE", method=method.upper(),
                            allow_fallback=not no_fallback, force=force, rank=rank, max_steps=steps,
                            learning_rate=learning_rate, max_examples=max_examples, **inline)
        if not follow:
            with EventProducer(config) as producer:
                producer.produce(request)
            out.print(f"training request {request_id} for {company}")
            return
        with EventConsumer(config, f"cda-train-follow-{uuid.uuid4()}", dead_letters=Skipped()) as consumer:
            _from_here(consumer, config)
            with EventProducer(config) as producer:
                producer.produce(request)
            out.print(f"training request {request_id} for {company}")
            _follow(consumer, company, request_id, timeout)


def _follow(consumer: EventConsumer, company: str, request_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
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


def adapters(
    company: str = typer.Option(..., "--company", help="The company whose adapters to list."),
    activate: str | None = typer.Option(None, "--activate", help="Serve this stored version (a lora_adapter_ready for it)."),
    rollback: bool = typer.Option(False, "--rollback", help="Serve the version that was served before the current one."),
) -> None:
    """A company's adapter versions with their metrics, which one inference serves, and refusals with reasons.

    Active means what the inference lifecycle announced (`adapter_activated` on `company_adapters`). Switching
    version is an event too: `--activate` / `--rollback` produce a `lora_adapter_ready` for a stored version
    (the user's explicit choice: no gate), which the lifecycle checks and activates."""
    with failing_clearly():
        if activate and rollback:
            raise ValueError("give --activate VERSION or --rollback, not both")
        config = settings()
        registry = LocalAdapterRegistry(config.home / "adapters")
        active = active_adapter(config, company)
        if activate or rollback:
            _announce(config, registry, company, activate or _previous(active, company))
            return
        versions = registry.list(company)
        refused = refusals(config, company)
        if not versions and active is None and not refused:
            out.print(f"no adapters for company {company}")
            return
        active_version = str(active["version"]) if active is not None else None
        refused_versions = {r.version for r in refused}
        table = Table("version", "active", "created", "rank", "exact_match", "worst kind", "baseline", "json_valid",
                      "dataset", "request", "refused")
        for v in versions:
            m = v.metrics
            table.add_row(v.version, "*" if v.version == active_version else "", v.created_at[:19], str(v.rank),
                          f"{m.get('exact_match', 0):.2f}", _worst_kind(m), f"{m.get('baseline_exact_match', 0):.2f}",
                          f"{m.get('json_valid', 0):.2f}", v.dataset_hash[:10], v.request_id[:8],
                          "yes" if v.version in refused_versions else "")
        out.print(table)
        if active_version is None:
            out.print(f"active: none (company {company} is served the base model)")
        else:
            known = "" if any(v.version == active_version for v in versions) else " (not in this registry)"
            out.print(f"active: {active_version}{known}, since {active.occurred_at.isoformat()[:19]}")  # type: ignore[union-attr]
        for r in refused:
            out.print(f"refused: {r.version} at {r.occurred_at[:19]} ({r.error_kind}): {r.reason}")


def _previous(active: Event | None, company: str) -> str:
    previous = active.data.get("previous_version") if active is not None else None
    if not previous:
        raise ValueError(f"company {company} was served no earlier adapter to roll back to")
    return str(previous)


def _announce(config: Settings, registry: LocalAdapterRegistry, company: str, version: str) -> None:
    from inference.routing import served_name

    stored = registry.get(company, version)
    event = Event.new("lora_adapter_ready", company, request_id=stored.request_id, adapter_name=served_name(company),
                      version=stored.version, uri=f"file://{stored.path}", base_model=stored.base_model,
                      rank=stored.rank, dataset_hash=stored.dataset_hash,
                      metrics={k: float(v) for k, v in stored.metrics.items()})
    with EventProducer(config) as producer:
        producer.produce(event)
    out.print(f"asked inference to serve {company}'s version {stored.version}; `cda adapters --company {company}` "
              "shows it active once the lifecycle activated it")


def _worst_kind(metrics: dict[str, float]) -> str:
    """The gate's weakest kind of task (tool) and its exact match, or "-" for a version scored before kinds."""
    from trainer.evaluate import kinds

    scored = kinds(metrics)
    if not scored:
        return "-"
    kind, (exact, _) = min(scored.items(), key=lambda kv: kv[1][0])
    return f"{kind} {exact:.2f}"
