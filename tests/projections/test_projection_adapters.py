"""One truth of "the active adapter" in the `lora_adapters` view: the version the company's latest
`adapter_activated` names (what the inference server serves), refusals shown with their reason, and a
rollback (an activation of an earlier version) moving `active` back. Real broker, real chDB."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from core.settings import Settings
from projections.catalog import ADAPTERS
from projections.queries import listing
from projections.store import ProjectionStore
from tests.projections.test_projections import at, drain, produce
from topics.events import Event

pytestmark = pytest.mark.kafka
Catalog = Callable[..., Settings]


def e(event_type: str, seconds: float, **fields: Any) -> Event:
    return Event.new(event_type, "acme", occurred_at=at(seconds), **fields)


def trained(request: str, version: str, seconds: float) -> list[Event]:
    return [
        e("lora_training_requested", seconds, request_id=request, base_model="tiny", source="INLINE", rank=8),
        e("lora_adapter_ready", seconds + 1, request_id=request, adapter_name=f"acme-{version}", version=version,
          uri=f"file:///registry/acme/{version}", base_model="tiny", rank=8, dataset_hash="h",
          metrics={"exact_match": 0.9}),
    ]


def activated(version: str, seconds: float, previous: str | None = None, request: str | None = None) -> Event:
    return e("adapter_activated", seconds, version=version, served_name="acme", uri=f"file:///registry/acme/{version}",
             base_model="tiny", rank=8, request_id=request, previous_version=previous)


def adapters(store: ProjectionStore) -> dict[str, dict[str, Any]]:
    return {r["version"]: r for r in listing(store, "adapters", "acme")}


def fold(settings: Settings, store: ProjectionStore, events: list[Event]) -> None:
    produce(settings, events)
    runner, = drain(settings, store, ["adapters"], len(events))
    assert runner.stats.dead_lettered == 0  # refusals and activations fold; before, every refusal was dead-lettered
    assert runner.stats.events == len(events)


def test_active_is_the_latest_activation_refusals_show_and_rollback_moves_it_back(
    catalog: Catalog, store: ProjectionStore
) -> None:
    settings = catalog(*ADAPTERS.topics, "dead_letters")
    assert "company_adapters" in ADAPTERS.topics

    fold(settings, store, [
        *trained("tr1", "v1", 0), activated("v1", 2, request="tr1"),
        *trained("tr2", "v2", 3),
        e("adapter_refused", 5, version="v2", uri="file:///registry/acme/v2", reason="rank 64 exceeds --max-lora-rank 16",
          error_kind="rank_too_large", request_id="tr2"),
    ])
    view = adapters(store)
    assert {v: (r["status"], r["active"]) for v, r in view.items()} == {"v1": ("ready", 1), "v2": ("refused", 0)}
    assert view["v2"]["reason"] == "rank 64 exceeds --max-lora-rank 16" and view["v2"]["error_kind"] == "rank_too_large"
    assert view["v2"]["request_id"] == "tr2" and view["v1"]["reason"] == ""

    # v3 is activated, then the company rolls back to v1: a rollback is an activation (here without a request id)
    fold(settings, store, [*trained("tr3", "v3", 6), activated("v3", 8, previous="v1", request="tr3"),
                           activated("v1", 9, previous="v3")])
    view = adapters(store)
    assert {v: (r["status"], r["active"]) for v, r in view.items()} == {
        "v1": ("ready", 1), "v2": ("refused", 0), "v3": ("ready", 0)}
    assert view["v1"]["request_id"] == "tr1"  # the rollback found its run by version
    assert view["v1"]["activated_at"] == at(9).replace(tzinfo=None)
    assert sum(r["active"] for r in view.values()) == 1


def test_a_ready_adapter_is_not_active_until_it_is_activated(catalog: Catalog, store: ProjectionStore) -> None:
    settings = catalog(*ADAPTERS.topics, "dead_letters")
    fold(settings, store, [*trained("tr1", "v1", 0), activated("v1", 2, request="tr1"), *trained("tr2", "v2", 3)])
    assert {v: (r["status"], r["active"]) for v, r in adapters(store).items()} == {"v1": ("ready", 1), "v2": ("ready", 0)}
