"""Storing a batch of rows when some of them may be refused: keep every row the store takes.

When the store refuses a batch (a deterministic `StoreError`), the batch is split in halves until each
refused row stands alone, so one bad row among thousands costs a few dozen inserts, not thousands of
one-row parts. Rows are idempotent (deduplicated by event id), so a half that was partly stored before
the refusal is stored again harmlessly. A transient failure (`StoreUnavailable`) propagates at once:
the caller retries the whole batch later and has dead-lettered nothing meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from projections.errors import StoreError
from projections.store import ProjectionStore


def insert_keeping_good(store: ProjectionStore, table: str, rows: Sequence[Sequence[Any]],
                        columns: Sequence[str]) -> list[tuple[int, StoreError]]:
    """Insert `rows`; returns the (index, error) of each row the store refused, the others are stored."""
    refused: list[tuple[int, StoreError]] = []

    def put(lo: int, hi: int) -> None:
        try:
            store.insert(table, rows[lo:hi], columns)
        except StoreError as exc:
            if hi - lo == 1:
                refused.append((lo, exc))
                return
            mid = (lo + hi) // 2
            put(lo, mid)
            put(mid, hi)

    if rows:
        put(0, len(rows))
    return refused
