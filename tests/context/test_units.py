"""Units of a payload: every list of records, the top-level values as each record's context, and what is left
out named with its reason; a payload with no record has no units."""

from __future__ import annotations

import json

import pytest

from context.units import split_payload, split_units


def test_every_list_of_records_is_units_in_order_with_the_top_level_values_as_context() -> None:
    split = split_payload({"task": "process_invoices", "currency": "EUR", "invoices": [{"customer": "c1", "amount": 3}, {"customer": "c2"}],
                           "refunds": [{"customer": "c3", "currency": "USD"}], "tags": ["a", "b"],
                           "meta": {"batch": 7}, "empty": []})
    assert [u.source for u in split.units] == ["invoices[0]", "invoices[1]", "refunds[0]"]
    assert [json.loads(u.data_json) for u in split.units] == [
        {"currency": "EUR", "customer": "c1", "amount": 3}, {"currency": "EUR", "customer": "c2"},
        {"currency": "USD", "customer": "c3"}]  # a record's own field wins over the context
    assert [u.index for u in split.units] == [0, 1, 2]
    assert dict(split.left_out) == {"tags": "a list of values, not of records (objects)",
                                    "meta": "a nested object beside the lists of records (only a record's own fields "
                                            "are data)", "empty": "an empty list"}


def test_an_object_without_lists_of_records_is_one_unit_and_a_bare_list_is_its_records() -> None:
    assert [json.loads(u.data_json) for u in split_units('{"customer": "c1", "tags": [1]}')] == [
        {"customer": "c1", "tags": [1]}]
    assert [u.source for u in split_units('[{"a": 1}, {"a": 2}]')] == ["[0]", "[1]"]


@pytest.mark.parametrize(("payload", "why"), [({}, "an empty object"), ([], "a list that is not of objects"),
                                              ([1, 2], "a list that is not of objects"), ("text", "a single value"),
                                              (None, "a single value")])
def test_a_payload_without_a_record_has_no_units_and_says_why(payload: object, why: str) -> None:
    split = split_payload(payload)
    assert split.units == () and split.left_out[0][0] == "data" and split.left_out[0][1].startswith(why)
