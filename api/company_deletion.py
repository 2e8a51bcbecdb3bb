"""Forgetting a company: what the operator's `DELETE /admin/companies/{id}` and `cda companies delete` do.

In order: its keys are revoked; every record of it on a compacted topic (keys, tools, agent settings, memory,
sessions, served adapter) gets the event that ends it where one exists (`tool_removed`, `memory_deleted`,
`session_closed`), so running parts drop it from their folds at once, then a tombstone, so compaction drops
it from the log; its adapters, examples files and training work folders are deleted, its adapter unloaded
from vLLM; its rows are deleted from every ClickHouse table that has a `company_id`.

Its data keys are among those tombstones (`company_data_keys`): its content on the non-compacted topics
(requests with their data, prompts, tool arguments and results, answers, memory text) was sealed with them
(`topics.sealing`), so from then on a replay, the projections and training read `[forgotten]` there.

What stays: the ids, times and tool names of its events (not sealed, so the log still orders and joins), until
the topics' retention ends them; a data key's bytes on the broker's disk until compaction rolls its segment
(about a minute after a later write); inline training examples inside a training request's example list.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from api.keys import KeyTable, revocation
from context import events as context_events
from context.memory import CompanyMemory
from context.sessions import CompanySessions
from core.paths import UnsafePath, safe_join
from core.settings import Settings
from inference.routing import served_name
from inference.vllm_api import VllmApi
from projections.store import ProjectionStore
from topics.catalog import CATALOG
from topics.connection import topic_name
from topics.events import Event
from topics.identifiers import check_identifier
from topics.producer import EventProducer
from topics.reads import read_to_end

log = logging.getLogger(__name__)


@dataclass
class Forgotten:
    """What was done, for the operator's answer (counts and names, never content)."""

    company_id: str
    keys_revoked: list[str] = field(default_factory=list)
    ended: dict[str, int] = field(default_factory=dict)  # event type -> how many were produced
    tombstones: dict[str, int] = field(default_factory=dict)  # compacted topic -> keys tombstoned
    folders_removed: list[str] = field(default_factory=list)
    rows_deleted_from: list[str] = field(default_factory=list)
    remains: list[str] = field(default_factory=list)


def forget_company(settings: Settings, store: ProjectionStore | None, company_id: str) -> Forgotten:
    """Forget `company_id` as far as this deployment can (see the module's docstring for what stays)."""
    check_identifier(company_id, "company")
    done = Forgotten(company_id)
    keys, records = KeyTable(), _compacted_records(settings, company_id)
    for event in records.get("company_keys", {}).values():
        keys.apply(event)
    done.keys_revoked = keys.active_keys(company_id)
    ends = [revocation(company_id, k, "company deleted") for k in done.keys_revoked] + _ends(company_id, records)
    with EventProducer(settings) as producer:
        producer.produce_many(ends)
        for topic, by_key in records.items():
            for key in by_key:
                producer.produce_raw(topic_name(settings, topic), key, None)
            done.tombstones[topic] = len(by_key)
        producer.flush()
    for event in ends:
        done.ended[event.type] = done.ended.get(event.type, 0) + 1
    done.folders_removed = _remove_folders(settings, company_id)
    try:
        VllmApi(settings.vllm_url, timeout_s=10).unload_adapter(served_name(company_id))
    except Exception:  # noqa: BLE001 - vLLM away or the adapter not loaded: it holds nothing of the company then
        log.info("no adapter of %s unloaded from vLLM at %s", company_id, settings.vllm_url)
    if store is not None:
        done.rows_deleted_from = delete_rows(store, company_id)
    done.remains = ["the non-compacted history's ids, times and tool names (its content was sealed with the keys "
                    "tombstoned now and reads as [forgotten]) until the topics' retention ends them",
                    "inline training examples inside training requests' example lists, until retention"]
    return done


def _compacted_records(settings: Settings, company_id: str) -> dict[str, dict[bytes, Event]]:
    """The latest event per record key of the company, on each compacted topic."""
    out: dict[str, dict[bytes, Event]] = {}
    own = company_id.encode()
    for spec in CATALOG:
        if "compact" not in spec.cleanup_policy:
            continue
        latest: dict[bytes, Event] = {}
        for received in read_to_end(settings, spec.name, "cda-forget"):
            key = received.key or b""
            if key == own or key.startswith(own + b"/"):
                latest[key] = received.event
        out[spec.name] = latest
    return out


def _ends(company_id: str, records: dict[str, dict[bytes, Event]]) -> list[Event]:
    """The events that end what is live, so the parts' folds drop it before compaction runs."""
    ends: list[Event] = []
    tools = {str(e["tool_name"]) for e in records.get("company_tools", {}).values() if e.type == "tool_registered"}
    ends += [Event.new("tool_removed", company_id, tool_name=name) for name in sorted(tools)]
    memory = CompanyMemory()
    for event in records.get("company_memory", {}).values():
        memory.apply(event)
    ends += context_events.forget(memory.entries_of(company_id), "the company was deleted")
    sessions = CompanySessions()
    for event in records.get("company_sessions", {}).values():
        sessions.apply(event)
    ends += [context_events.session_closed(company_id, s.session_id, "the company was deleted")
             for s in sessions.open_sessions()]
    return ends


def _remove_folders(settings: Settings, company_id: str) -> list[str]:
    """Its adapters, stored examples and training work folders, under the cda home."""
    removed: list[str] = []
    for root in (settings.home / "adapters", settings.home / "trainer" / "examples", settings.home / "trainer" / "work"):
        try:
            folder = safe_join(root, company_id)
        except UnsafePath:
            continue
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(str(Path(folder).relative_to(settings.home)))
    return removed


def delete_rows(store: ProjectionStore, company_id: str) -> list[str]:
    """Delete the company's rows from every table of the store's database that has a `company_id` column."""
    tables = [str(r[0]) for r in store.query(
        "SELECT c.table FROM system.columns AS c INNER JOIN system.tables AS t ON c.database = t.database "
        "AND c.table = t.name WHERE c.database = currentDatabase() AND c.name = 'company_id' "
        "AND t.engine NOT IN ('View', 'MaterializedView') ORDER BY c.table", {})]
    for table in tables:
        store.command(f"ALTER TABLE `{table}` DELETE WHERE company_id = {{company:String}} "
                      "SETTINGS mutations_sync = 1", {"company": company_id})
    return tables



