"""Sealing a company's content (crypto-shredding), without a broker: what is sealed, that it opens only for its
own company, event type and field, and what a reader gets once the key is gone."""

from __future__ import annotations

import json
import time
from types import MappingProxyType

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.settings import Settings
from topics.errors import SerializationError
from topics.events import Event
from topics.sealing import FORGOTTEN_JSON, FORGOTTEN_TEXT, PREFIX, SEALED, KeyRing, SealingSerde, open_sealed, seal
from topics.serde import SingleObjectSerde


class MemoryRing(KeyRing):
    """A key ring held in memory (the broker-backed one is tested in tests/api/test_api_crypto_shredding.py)."""

    def __init__(self) -> None:
        super().__init__(Settings())
        self.keys: dict[tuple[str, str], bytes] = {}

    def sealing_key(self, company_id: str) -> tuple[str, bytes] | None:
        key_id = f"k-{company_id}"
        return key_id, self.keys.setdefault((company_id, key_id), AESGCM.generate_key(bit_length=256))

    def opening_key(self, company_id: str, key_id: str) -> bytes | None:
        return self.keys.get((company_id, key_id))


def _request(company: str = "acme") -> Event:
    return Event.new("data_process_requested", company, request_id="r1", job_id="j1", task="pay invoice 77",
                     payload_json=json.dumps({"iban": "DE44-secret"}))


def test_content_fields_are_sealed_and_open_again_with_the_key() -> None:
    ring = MemoryRing()
    serde = SealingSerde(SingleObjectSerde(), ring)
    raw = serde.encode(_request(), "company_data")
    assert b"DE44-secret" not in raw and b"pay invoice" not in raw and PREFIX.encode() in raw
    opened = serde.decode(raw, "company_data")
    assert opened["task"] == "pay invoice 77" and json.loads(opened["payload_json"]) == {"iban": "DE44-secret"}
    assert opened["job_id"] == "j1"  # ids stay readable: the log still orders and joins


def test_a_forgotten_company_reads_as_forgotten_and_others_are_untouched() -> None:
    ring = MemoryRing()
    doomed, kept = seal(_request("doomed"), ring), seal(_request("kept"), ring)
    ring.keys = {k: v for k, v in ring.keys.items() if k[0] != "doomed"}
    gone = open_sealed(doomed, ring)
    assert gone["task"] == FORGOTTEN_TEXT and gone["payload_json"] == FORGOTTEN_JSON
    assert json.loads(gone["payload_json"]) == {"forgotten": True}  # still JSON for those who parse it
    assert open_sealed(kept, ring)["task"] == "pay invoice 77"


def test_a_sealed_value_moved_to_another_company_or_field_does_not_open() -> None:
    ring = MemoryRing()
    sealed = seal(_request("acme"), ring)
    ring.keys[("other", "k-acme")] = ring.keys[("acme", "k-acme")]  # even with the same key at hand
    moved = Event(sealed.type, MappingProxyType({**sealed.data, "company_id": "other"}))
    with pytest.raises(SerializationError, match="does not open"):
        open_sealed(moved, ring)
    swapped = Event(sealed.type, MappingProxyType({**sealed.data, "task": sealed["payload_json"]}))
    with pytest.raises(SerializationError, match="does not open"):
        open_sealed(swapped, ring)


def test_events_without_content_are_not_touched() -> None:
    ring = MemoryRing()
    event = Event.new("memory_deleted", "acme", entry_id="e1")
    assert seal(event, ring) is event
    assert "memory_deleted" not in SEALED and "company_key_issued" not in SEALED


def test_a_replay_of_a_forgotten_history_reads_the_keys_once_not_once_per_record() -> None:
    class CountingRing(KeyRing):
        def __init__(self) -> None:
            super().__init__(Settings(), refresh_s=60)
            self.refreshes = 0

        def refresh(self, force: bool = False) -> None:
            if force or time.monotonic() - self._refreshed_at >= self.refresh_s:
                self.refreshes += 1
                self._refreshed_at = time.monotonic()

    sealer = MemoryRing()
    history = [seal(_request("gone"), sealer) for _ in range(50)]
    ring = CountingRing()
    assert all(open_sealed(e, ring)["task"] == FORGOTTEN_TEXT for e in history)
    assert ring.refreshes <= 2
