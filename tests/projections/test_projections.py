"""Projections on the real broker and real chDB: events in, rows out; redelivery, replay and bad input."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from core.settings import Settings
from projections.catalog import PROJECTIONS, projection
from projections.queries import dashboard, dashboard_queries, listing
from projections.runner import ProjectionRunner
from projections.store import ProjectionStore
from topics.connection import topic_name
from topics.consumer import EventConsumer
from topics.events import Event
from topics.positions import Position
from topics.producer import EventProducer
from topics.replay import ReplayRange, replay_to_topic, rewind_group
from topics.serde import SingleObjectSerde

pytestmark = pytest.mark.kafka
Catalog = Callable[..., Settings]
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def job_story(company: str, job: str, *, fail_call: bool = False, fail_job: bool = False) -> list[Event]:
    """A job of two steps with one tool call each; optionally a failing call and a failed job."""
    e = lambda t, s, **f: Event.new(t, company, occurred_at=at(s), job_id=job, **f)  # noqa: E731
    events = [
        e("job_accepted", 0, request_id=f"r-{job}", task="invoice", tools=["create_invoice"], adapter_version=None),
        e("step_started", 1, step=1, model="acme@lora", unit=0, adapter_version="v1", prompt_hash="p1"),
        e("tool_call_requested", 1.1, step=1, call_id="c1", tool_name="create_invoice", arguments_json="{}"),
        e("tool_call_completed", 1.3, step=1, call_id="c1", tool_name="create_invoice", status_code=201,
          result_json="{}", latency_ms=200.0),
        e("step_started", 2, step=2, model="acme@lora", unit=1, adapter_version="v1", prompt_hash="p2"),
        e("tool_call_requested", 2.1, step=2, call_id="c2", tool_name="send_email", arguments_json="{}"),
    ]
    if fail_call:
        events.append(e("tool_call_failed", 2.5, step=2, call_id="c2", tool_name="send_email", error="HTTP 503",
                        error_kind="http_5xx", retryable=True, latency_ms=400.0))
    else:
        events.append(e("tool_call_completed", 2.2, step=2, call_id="c2", tool_name="send_email", status_code=200,
                        result_json="{}", latency_ms=100.0))
    if fail_job:
        events.append(e("job_failed", 3, error="gave up", error_kind="tool", steps=2, tool_calls=2, latency_ms=3000.0))
    else:
        events.append(e("job_completed", 3, steps=2, tool_calls=2, latency_ms=3000.0,
                        result_json=json.dumps({"completed": 2 - fail_call, "failed": int(fail_call)})))
    return events


def tool_events(company: str) -> list[Event]:
    reg = lambda name, s, url: Event.new("tool_registered", company, occurred_at=at(s), tool_name=name,  # noqa: E731
                                         description=f"{name} tool", parameters_schema_json="{}", url=url,
                                         secret_ref=f"env:{company.upper()}_{name.upper()}")
    return [
        reg("create_invoice", 0, "https://v1.example/inv"),
        reg("send_email", 1, "https://mail.example"),
        reg("create_invoice", 2, "https://v2.example/inv"),  # replaced
        Event.new("tool_removed", company, occurred_at=at(3), tool_name="send_email", reason="retired"),
    ]


def adapter_events(company: str) -> list[Event]:
    e = lambda t, s, **f: Event.new(t, company, occurred_at=at(s), **f)  # noqa: E731
    return [
        e("lora_training_requested", 0, request_id="tr1", base_model="tiny", source="INLINE", rank=8),
        e("training_progress", 1, request_id="tr1", step=5, total_steps=10, loss=1.5),
        e("training_progress", 2, request_id="tr1", step=10, total_steps=10, loss=0.7),
        e("lora_adapter_ready", 3, request_id="tr1", adapter_name=f"{company}-a1", version="a1", uri="file:///a1",
          base_model="tiny", rank=8, dataset_hash="h1", metrics={"exact_match": 0.9, "json_valid": 1.0}),
        e("lora_training_requested", 4, request_id="tr2", base_model="tiny", source="FROM_HISTORY"),
        e("training_rejected", 5, request_id="tr2", version="a2", candidate_metrics={"exact_match": 0.8},
          current_metrics={"exact_match": 0.9}, reason="kind_below_floor: exact match of qv_file 0.400 is under the floor"),
        e("lora_training_requested", 6, request_id="tr3", base_model="tiny", source="INLINE"),
        e("training_failed", 7, request_id="tr3", error="2 examples", error_kind="bad_data",
          reason_counts={"too_few": 1}),
        e("lora_training_requested", 8, request_id="tr4", base_model="tiny", source="INLINE", rank=16),
        e("lora_adapter_ready", 9, request_id="tr4", adapter_name=f"{company}-a4", version="a4", uri="file:///a4",
          base_model="tiny", rank=16, dataset_hash="h4",
          metrics={"exact_match": 0.95, "kind_exact:zx_post": 1.0, "kind_exact:qv_file": 0.9, "worst_kind_exact": 0.9}),
        e("adapter_activated", 10, version="a4", served_name=company, uri="file:///a4", base_model="tiny", rank=16,
          request_id="tr4", previous_version="a1"),
    ]


def memory_events(company: str) -> list[Event]:
    e = lambda t, s, **f: Event.new(t, company, occurred_at=at(s), **f)  # noqa: E731
    return [
        e("memory_written", 0, entry_id="m1", content="prefers PDF invoices", tags=["billing"]),
        e("memory_written", 1, entry_id="m2", content="VAT id is X"),
        e("memory_written", 2, entry_id="m1", content="prefers e-invoices", tags=["billing", "v2"]),
        e("memory_deleted", 3, entry_id="m2", reason="user asked"),
    ]


def produce(settings: Settings, events: list[Event]) -> None:
    with EventProducer(settings) as producer:
        producer.produce_many(events)


def drain(settings: Settings, store: ProjectionStore, names: list[str], expected_events: int,
          timeout_s: float = 60, group_suffix: str = "") -> list[ProjectionRunner]:
    """Run the named projections in this thread until they consumed `expected_events` between them."""
    runners = [ProjectionRunner(settings, store, projection(n), flush_interval_s=0.1,
                                group_id=f"{settings.topic_prefix}{n}{group_suffix}") for n in names]
    for r in runners:
        r.start()
    stop = threading.Event()
    deadline = time.monotonic() + timeout_s
    while sum(r.stats.events for r in runners) < expected_events and time.monotonic() < deadline:
        for r in runners:
            r.step(stop)
    for r in runners:
        r.flush(stop)
        r.consumer.close()
    return runners


ALL = ["jobs", "tool_calls", "tools", "adapters", "memory"]


def full_story() -> list[Event]:
    return (job_story("acme", "j1") + job_story("acme", "j2", fail_call=True, fail_job=True)
            + job_story("globex", "g1") + tool_events("acme") + tool_events("globex")
            + adapter_events("acme") + memory_events("acme") + memory_events("globex"))


def expected_reads(events: list[Event]) -> int:
    jobs = sum(1 for e in events if e.type in PROJECTIONS["jobs"].folds)
    return sum(1 for e in events if any(e.type in PROJECTIONS[n].folds or e.type in PROJECTIONS[n].ignored for n in ALL)) + jobs


def snapshot(store: ProjectionStore) -> dict[str, list[tuple]]:  # type: ignore[type-arg]
    return {p.view: store.query(f"SELECT * FROM {p.view} ORDER BY ALL") for p in PROJECTIONS.values()}


def test_every_projection_folds_its_events(catalog: Catalog, store: ProjectionStore) -> None:
    settings = catalog()
    events = full_story()
    produce(settings, events)
    runners = drain(settings, store, ALL, expected_reads(events))
    assert all(r.stats.dead_lettered == 0 for r in runners)

    jobs = {r["job_id"]: r for r in listing(store, "jobs", "acme")}
    assert set(jobs) == {"j1", "j2"}
    assert jobs["j1"]["status"] == "completed" and jobs["j1"]["steps"] == 2 and jobs["j1"]["tool_calls"] == 2
    assert jobs["j1"]["adapter_version"] == "v1" and jobs["j1"]["model"] == "acme@lora"  # from the steps, as emitted
    assert jobs["j1"]["latency_ms"] == 3000.0
    assert jobs["j2"]["status"] == "failed" and jobs["j2"]["error"] == "gave up"


    calls = {(r["job_id"], r["call_id"]): r for r in listing(store, "tool-calls", "acme")}
    assert len(calls) == 4
    assert calls[("j1", "c1")]["status"] == "completed" and calls[("j1", "c1")]["status_code"] == 201
    assert calls[("j2", "c2")]["status"] == "failed" and calls[("j2", "c2")]["error"] == "HTTP 503"
    assert calls[("j2", "c2")]["latency_ms"] == 400.0

    tools = listing(store, "tools", "acme")
    assert [(t["tool_name"], t["url"]) for t in tools] == [("create_invoice", "https://v2.example/inv")]
    assert tools[0]["secret_ref"] == "env:ACME_CREATE_INVOICE"

    adapters = {r["request_id"]: r for r in listing(store, "adapters", "acme")}
    assert {k: v["status"] for k, v in adapters.items()} == {"tr1": "ready", "tr2": "rejected", "tr3": "failed",
                                                            "tr4": "ready"}
    assert [k for k, v in adapters.items() if v["active"]] == ["tr4"]
    assert adapters["tr1"]["eval_metrics"] == {"exact_match": 0.9, "json_valid": 1.0} and adapters["tr1"]["rank"] == 8
    assert adapters["tr2"]["eval_metrics"] == {"exact_match": 0.8}
    assert adapters["tr2"]["reason"].startswith("kind_below_floor")  # why the gate held it back
    run = store.query_dicts("SELECT progress_step, progress_total, last_loss FROM lora_adapters WHERE request_id = 'tr1'")
    assert run == [{"progress_step": 10, "progress_total": 10, "last_loss": 0.7}]

    memory = listing(store, "memory", "acme")
    assert [(m["entry_id"], m["content"], m["tags"]) for m in memory] == [("m1", "prefers e-invoices", ["billing", "v2"])]

    # company isolation: a company's listing holds only its own rows
    assert {r["job_id"] for r in listing(store, "jobs", "globex")} == {"g1"}
    assert listing(store, "adapters", "globex") == []

    latency = dashboard(store, "job_latency_percentiles")
    assert {r["company_id"]: r["finished_jobs"] for r in latency} == {"acme": 2, "globex": 1}
    errors = {(r["company_id"], r["tool_name"]): r["error_rate"] for r in dashboard(store, "tool_error_rate", "acme")}
    assert errors == {("acme", "send_email"): 0.5, ("acme", "create_invoice"): 0.0}
    assert set(dashboard_queries()) >= {"jobs_by_status_over_time", "job_latency_percentiles", "tool_error_rate",
                                        "adapters_by_company"}
    by_status = {r["status"]: r["jobs"] for r in dashboard(store, "jobs_by_status_over_time", "acme")}
    assert by_status == {"completed": 1, "failed": 1}
    panel = dashboard(store, "adapters_by_company", "acme")
    assert len(panel) == 4
    served = next(r for r in panel if r["active"])  # the gate's figure per kind of task, and the weakest
    assert served["kind_exact"] == {"zx_post": 1.0, "qv_file": 0.9} and served["worst_kind_exact"] == 0.9


def test_redelivery_and_replay_change_nothing(catalog: Catalog, store: ProjectionStore) -> None:
    settings = catalog()
    events = full_story()
    produce(settings, events)
    drain(settings, store, ALL, expected_reads(events))
    before = snapshot(store)
    facts_before = store.query("SELECT count() FROM job_facts FINAL")
    # redelivery: every group reads everything again
    for name in ALL:
        for topic in PROJECTIONS[name].topics:
            rewind_group(settings, f"{settings.topic_prefix}{name}", ReplayRange(topic, Position.beginning()))
    drain(settings, store, ALL, expected_reads(events))
    assert snapshot(store) == before
    # replay: the same records copied into the topic again (new offsets, same event ids)
    copied = replay_to_topic(settings, ReplayRange("company_automation_jobs", Position.beginning()), "company_automation_jobs")
    assert copied == sum(1 for e in events if e.type in PROJECTIONS["jobs"].folds)
    drain(settings, store, ["jobs", "tool_calls"], 2 * copied)
    assert snapshot(store) == before
    assert store.query("SELECT count() FROM job_facts FINAL") == facts_before


def test_unfoldable_events_and_refused_rows_go_to_dead_letters(catalog: Catalog, store: ProjectionStore) -> None:
    settings = catalog()
    serde = SingleObjectSerde()
    stray = Event.new("memory_written", "acme", entry_id="x", content="on the wrong topic")
    huge_attempt = Event.new("tool_call_requested", "acme", job_id="j9", step=1, call_id="c9", tool_name="t",
                             arguments_json="{}", attempt=70_000)  # a valid Avro int that UInt16 cannot hold
    good = job_story("acme", "j1")
    with EventProducer(settings) as producer:
        producer.produce_raw(topic_name(settings, "company_automation_jobs"), b"acme", serde.encode(stray))
        producer.produce(huge_attempt)
        producer.produce_many(good)
    runners = drain(settings, store, ["jobs", "tool_calls"], 2 * (len(good) + 1))  # the stray never reaches a fold
    jobs, calls = runners
    assert jobs.stats.dead_lettered == 0 and calls.stats.dead_lettered == 1
    assert {r["job_id"]: r["status"] for r in listing(store, "jobs", "acme")} == {"j1": "completed", "j9": "running"}
    assert len(listing(store, "tool-calls", "acme")) == 2  # the two good calls, not the refused one
    with EventConsumer(settings, "dlq-reader") as consumer:
        consumer.assign("dead_letters", Position.beginning(), until_end=True)
        letters = [r.event for r in consumer]
    reasons = sorted(e.data["reason"] for e in letters)
    assert len(letters) == 3
    assert sum("memory_written event does not belong on topic company_automation_jobs" in r for r in reasons) == 2
    assert any("column `attempt`" in r for r in reasons), reasons
    refused = next(e for e in letters if "column `attempt`" in e.data["reason"])
    assert refused.data["consumer_group"].endswith("tool_calls")
    assert serde.decode(refused.data["payload"]).data["attempt"] == 70_000  # the record itself is kept


def test_a_completed_job_with_a_failed_unit_is_partially_failed(catalog: Catalog, store: ProjectionStore) -> None:
    settings = catalog()
    events = job_story("acme", "j3", fail_call=True)
    produce(settings, events)
    drain(settings, store, ALL, expected_reads(events))
    [job] = listing(store, "jobs", "acme")
    assert job["status"] == "partially_failed" and job["tool_calls"] == 2
