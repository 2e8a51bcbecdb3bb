"""The schema catalog: every event type loads, carries the envelope, and belongs to exactly one topic."""

from __future__ import annotations

import pytest

from topics.catalog import CATALOG, topic, topic_of
from topics.errors import SchemaNotFound, UnknownTopic
from topics.schema_store import ENVELOPE_FIELDS, default_store


def test_every_schema_has_the_envelope_first() -> None:
    store = default_store()
    for event_type in store.event_types:
        for schema in store.versions(event_type):
            names = [f["name"] for f in schema.raw["fields"]]
            assert tuple(names[:4]) == ENVELOPE_FIELDS, f"{event_type} v{schema.version}"


def test_every_event_type_belongs_to_exactly_one_topic() -> None:
    store = default_store()
    listed = [e for spec in CATALOG for e in spec.event_types]
    assert sorted(listed) == store.event_types
    assert len(listed) == len(set(listed))
    for event_type in store.event_types:
        assert event_type in topic_of(event_type).event_types


def test_fingerprints_are_unique_and_resolve_back() -> None:
    store = default_store()
    schemas = [s for e in store.event_types for s in store.versions(e)]
    assert len({s.fingerprint for s in schemas}) == len(schemas)
    for schema in schemas:
        assert store.by_fingerprint(schema.fingerprint) is schema


def test_required_topics_exist_with_their_policies() -> None:
    assert topic("company_tools").cleanup_policy == "compact"
    assert topic("company_sessions").cleanup_policy == "compact"
    assert topic("company_automation_jobs").cleanup_policy == "delete"
    assert set(topic("company_automation_jobs").event_types) >= {
        "job_accepted", "step_started", "tool_call_requested", "tool_call_completed", "tool_call_failed",
        "job_completed", "job_failed",
    }
    for spec in CATALOG:
        assert spec.key_fields[0] == "company_id"


def test_unknown_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(UnknownTopic, match="company_data"):
        topic("company_dta")
    with pytest.raises(SchemaNotFound, match="job_accepted"):
        default_store().current("job_acepted")
    with pytest.raises(SchemaNotFound, match="version 9"):
        default_store().get("job_accepted", 9)
