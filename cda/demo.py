"""The main job on the embedded defaults, until the agents land: sample company events through real Kafka.

Two companies register tools and run one job each; every event is produced as Avro, read back from the
broker and shown, so a newcomer sees the contract working end to end.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

from cda.settings import Settings
from cda.workers import wait_until
from topics.admin import apply_catalog
from topics.consumer import EventConsumer, Received
from topics.events import Event
from topics.positions import Position
from topics.producer import EventProducer

DEMO_TOPICS = ("company_tools", "company_data", "company_automation_jobs")


def sample_events(company_id: str, tool: str, run: str) -> Iterator[Event]:
    """A plausible day-one story of one company: a tool, a request, and the job that served it."""
    job_id = f"job-{run}-{company_id}"
    request_id = f"req-{run}-{company_id}"
    args = {"customer_id": f"{company_id}-42", "amount": 120.5}
    yield Event.new(
        "tool_registered", company_id, tool_name=tool, description=f"Creates an invoice in {company_id}'s billing system",
        parameters_schema_json=json.dumps({"type": "object", "required": ["customer_id", "amount"], "properties": {
            "customer_id": {"type": "string"}, "amount": {"type": "number"}}}),
        url=f"https://api.{company_id}.example/invoices", secret_ref=f"env:{company_id.upper()}_BILLING_TOKEN",
    )
    yield Event.new("data_process_requested", company_id, request_id=request_id, job_id=job_id,
                    task="Invoice this order", payload_json=json.dumps({"order": args}), tools=[tool])
    yield Event.new("job_accepted", company_id, job_id=job_id, request_id=request_id, task="Invoice this order", tools=[tool])
    yield Event.new("step_started", company_id, job_id=job_id, step=1, model="base")
    yield Event.new("tool_call_requested", company_id, job_id=job_id, step=1, call_id="c1", tool_name=tool,
                    arguments_json=json.dumps(args))
    yield Event.new("tool_call_completed", company_id, job_id=job_id, step=1, call_id="c1", tool_name=tool,
                    status_code=201, result_json=json.dumps({"invoice_id": "inv-1"}), latency_ms=35.0)
    yield Event.new("job_completed", company_id, job_id=job_id, steps=1, tool_calls=1,
                    result_json=json.dumps({"invoice_id": "inv-1"}), latency_ms=120.0)


def run_demo(settings: Settings) -> list[Received]:
    """Apply the catalog, produce the sample story for two companies, and read this run's events back."""
    apply_catalog(settings)
    run = uuid.uuid4().hex[:8]
    events = [e for company, tool in (("acme", "create_invoice"), ("globex", "open_ticket"))
              for e in sample_events(company, tool, run)]
    with EventProducer(settings) as producer:
        producer.produce_many(events)
    wanted = {e.event_id for e in events}
    seen: list[Received] = []
    for name in DEMO_TOPICS:
        with EventConsumer(settings, f"cda-demo-{run}") as consumer:
            consumer.assign(name, Position.beginning(), until_end=True)
            seen += [r for r in consumer if r.event.event_id in wanted]
    return sorted(seen, key=lambda r: (r.event.company_id, r.event.occurred_at))


def fold_demo(settings: Settings, received: list[Received], timeout_s: float = 30.0) -> list[dict[str, object]]:
    """Fold the jobs topic into the embedded ClickHouse view and return this run's jobs, as dashboards see them."""
    import threading

    from projections.catalog import JOBS
    from projections.migrate import migrate
    from projections.queries import listing
    from projections.runner import ProjectionRunner
    from projections.store import ProjectionStore

    jobs = {str(r.event["job_id"]) for r in received if r.event.type == "job_completed"}
    companies = sorted({r.event.company_id for r in received})
    store = ProjectionStore.from_settings(settings)
    try:
        migrate(store)
        runner = ProjectionRunner(settings, store, JOBS, flush_interval_s=0.1)
        runner.start()
        stop, rows = threading.Event(), []

        def folded() -> bool:
            runner.step(stop)
            runner.flush(stop)
            rows[:] = [row for c in companies for row in listing(store, "jobs", c) if row["job_id"] in jobs]
            return len(rows) == len(jobs) and all(row["status"] == "completed" for row in rows)

        wait_until(folded, timeout_s, interval_s=0.0)
        runner.consumer.close()
        return rows
    finally:
        store.close()
