"""Crypto-shredding: a company's content on the non-compacted topics is sealed with its own data key.

The fields that carry what a company sent or what was made of it (payloads, tasks, prompts, tool arguments and
results, answers, memory text, inline training examples) are written as `sealed:v1:<key id>:<AES-GCM>`; the key
lives on the compacted `company_data_keys` topic. Forgetting a company tombstones its keys, and from then on every
reader (replay, the projections, the trainer, the agents) gets `[forgotten]` (a JSON object for JSON fields)
where the content was. The associated data binds a sealed value to its company, event type and field, so it
cannot be moved into another company's event.

`SealingSerde` wraps the configured serde, so producers and consumers need no change; a `KeyRing` per broker,
prefix and principal reads the keys topic (without a group, a short-lived consumer per refresh) and issues a
company's first key when it first writes.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.settings import Settings
from topics.catalog import topic
from topics.connection import client_config, fetch_batch, topic_name
from topics.errors import DeliveryError, SerializationError
from topics.events import Event

log = logging.getLogger(__name__)

KEYS_TOPIC = "company_data_keys"
PREFIX = "sealed:v1:"
FORGOTTEN_TEXT = "[forgotten]"
FORGOTTEN_JSON = '{"forgotten": true}'
SEALING_STALE_S = 60.0

# event type -> the fields that hold a company's content
SEALED: dict[str, tuple[str, ...]] = {
    "data_process_requested": ("task", "payload_json", "expected_json"),
    "job_accepted": ("task",),
    "step_started": ("prompt",),
    "tool_call_requested": ("arguments_json",),
    "tool_call_completed": ("result_json",),
    "tool_call_failed": ("raw_output",),
    "unit_ended": ("answer",),
    "job_completed": ("result_json",),
    "memory_written": ("content",),
    "lora_training_requested": ("task", "payload_json", "arguments_json", "steps_json"),
}


def forgotten(field: str) -> str:
    """What a reader gets where the content of a forgotten company was."""
    return FORGOTTEN_JSON if field.endswith("_json") else FORGOTTEN_TEXT


def _aad(company_id: str, event_type: str, field: str) -> bytes:
    return f"{company_id}\x1f{event_type}\x1f{field}".encode()


class KeyRing:
    """Every company's data keys as the keys topic holds them now (refreshed at most every `refresh_s`)."""

    def __init__(self, settings: Settings, refresh_s: float = 5.0) -> None:
        self.settings = settings
        self.refresh_s = refresh_s
        self._keys: dict[tuple[str, str], bytes] = {}
        self._latest: dict[str, str] = {}  # company -> the key id it seals with
        self._missed: dict[tuple[str, str], float] = {}  # keys looked for and not found, and when
        self._next_offset = 0  # the keys topic read up to here
        self._refreshed_at = float("-inf")
        self._topic_exists = False
        self._lock = threading.RLock()

    # -- reading the keys topic ---------------------------------------------------------------------
    def refresh(self, force: bool = False) -> None:
        """Read the keys topic from where the last refresh stopped to its end as of now."""
        with self._lock:
            if not force and time.monotonic() - self._refreshed_at < self.refresh_s:
                return
            from topics.serde import serde_for  # the plain serde: keys are not sealed

            serde = serde_for(registry_url=self.settings.schema_registry_url)
            name = topic_name(self.settings, KEYS_TOPIC)
            consumer = Consumer(client_config(self.settings, **{"group.id": f"cda-keys-{uuid.uuid4()}",
                                                                "enable.auto.commit": False}))
            try:
                tp = TopicPartition(name, 0)
                try:
                    low, high = consumer.get_watermark_offsets(tp, timeout=self.settings.kafka_timeout_s)
                except KafkaException:
                    self._topic_exists = False  # no keys topic (a partial catalog): nothing is sealed
                    self._refreshed_at = time.monotonic()
                    return
                self._topic_exists = True
                tp.offset = self._next_offset if self._next_offset > low else OFFSET_BEGINNING
                consumer.assign([tp])
                deadline = time.monotonic() + self.settings.kafka_timeout_s
                while max(self._next_offset, self._position(consumer, tp)) < high:
                    if time.monotonic() > deadline:
                        raise SerializationError(f"the data keys on {name} could not be read to their end "
                                                 f"within {self.settings.kafka_timeout_s:.0f}s")
                    for msg in fetch_batch(consumer, 500, 0.5):  # (consume(n) would wait out its timeout)
                        if msg.error() is None:
                            self._apply(msg.key() or b"", msg.value(), serde)
                            self._next_offset = msg.offset() + 1
                self._next_offset = max(self._next_offset, self._position(consumer, tp))
                self._refreshed_at = time.monotonic()
            finally:
                consumer.close()

    @staticmethod
    def _position(consumer: Consumer, tp: TopicPartition) -> int:
        offset = consumer.position([TopicPartition(tp.topic, tp.partition)])[0].offset
        return offset if offset >= 0 else -1

    def _apply(self, key: bytes, value: bytes | None, serde: Any) -> None:
        company, _, key_id = key.decode(errors="replace").partition("/")
        if value is None:  # a tombstone: the company (or this key of it) was forgotten
            self._keys.pop((company, key_id), None)
            if self._latest.get(company) == key_id:
                del self._latest[company]
            return
        try:
            event = serde.decode(value, KEYS_TOPIC)
            self._keys[(company, key_id)] = base64.urlsafe_b64decode(str(event["key"]))
            self._latest[company] = key_id
            self._missed.pop((company, key_id), None)
        except Exception as exc:  # noqa: BLE001 - an unreadable key seals nothing; its values read as forgotten
            log.warning("data key %s/%s skipped: %s", company, key_id, exc)

    # -- keys -----------------------------------------------------------------------------------------
    def sealing_key(self, company_id: str) -> tuple[str, bytes] | None:
        """The key `company_id`'s new content is sealed with (issued on first use); None without a keys topic."""
        with self._lock:
            # no refresh for a key at hand: sealing with a key deleted a moment ago only makes that content
            # unreadable, which is what deleting it asked for (and a producer on an event loop never waits here)
            key_id = self._latest.get(company_id)
            if key_id is None or time.monotonic() - self._refreshed_at > SEALING_STALE_S:
                self.refresh(force=True)  # (once a minute at most: a company deleted and made anew gets a new key)
                key_id = self._latest.get(company_id)
            if key_id is not None:
                return key_id, self._keys[(company_id, key_id)]
            if not self._topic_exists:
                return None
            return self._issue(company_id)

    def opening_key(self, company_id: str, key_id: str) -> bytes | None:
        """The key a value was sealed with, or None once the company was forgotten."""
        with self._lock:
            self.refresh()
            key = self._keys.get((company_id, key_id))
            missed = self._missed.get((company_id, key_id))
            if key is None and (missed is None or time.monotonic() - missed > self.refresh_s):
                # once per key and refresh period: a replay of a forgotten company's history reads the keys
                # topic once, not once per record
                self.refresh(force=True)
                key = self._keys.get((company_id, key_id))
                if key is None:
                    self._missed[(company_id, key_id)] = time.monotonic()
            return key

    def _issue(self, company_id: str) -> tuple[str, bytes]:
        from topics.serde import serde_for

        key_id, key = uuid.uuid4().hex[:16], AESGCM.generate_key(bit_length=256)
        event = Event.new("data_key_issued", company_id, key_id=key_id, key=base64.urlsafe_b64encode(key).decode())
        name = topic_name(self.settings, KEYS_TOPIC)
        failures: list[str] = []
        producer = Producer(client_config(self.settings, **{"enable.idempotence": True, "acks": "all"}))
        producer.produce(name, serde_for(registry_url=self.settings.schema_registry_url).encode(event, name),
                         key=topic(KEYS_TOPIC).key_for(event),
                         on_delivery=lambda err, _msg, seen=failures: seen.append(str(err)) if err else None)
        if producer.flush(self.settings.kafka_timeout_s) or failures:
            raise DeliveryError(f"issuing {company_id}'s data key on {name} failed: {failures or 'timed out'}")
        self._keys[(company_id, key_id)] = key
        self._latest[company_id] = key_id
        return key_id, key


class SealingSerde:
    """A serde that seals a company's content on the way out and opens it on the way in."""

    def __init__(self, inner: Any, ring: KeyRing) -> None:
        self.inner = inner
        self.ring = ring

    def encode(self, event: Event, topic: str = "") -> bytes:
        return self.inner.encode(seal(event, self.ring), topic)

    def decode(self, payload: bytes, topic: str = "") -> Event:
        return open_sealed(self.inner.decode(payload, topic), self.ring)


def seal(event: Event, ring: KeyRing) -> Event:
    """`event` with its content fields sealed (unchanged when its type carries none, or without a keys topic)."""
    fields = SEALED.get(event.type)
    if not fields or not any(isinstance(event.data.get(f), str) for f in fields):
        return event
    issued = ring.sealing_key(event.company_id)
    if issued is None:
        return event
    key_id, key = issued
    cipher = AESGCM(key)
    data = dict(event.data)
    for field in fields:
        value = data.get(field)
        if isinstance(value, str) and not value.startswith(PREFIX):
            nonce = uuid.uuid4().bytes[:12]
            sealed = cipher.encrypt(nonce, value.encode(), _aad(event.company_id, event.type, field))
            data[field] = f"{PREFIX}{key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"
    return Event(event.type, MappingProxyType(data))


def open_sealed(event: Event, ring: KeyRing) -> Event:
    """`event` with its sealed fields opened, or `[forgotten]` where its company's key is gone."""
    fields = SEALED.get(event.type)
    if not fields:
        return event
    data: dict[str, Any] | None = None
    for field in fields:
        value = event.data.get(field)
        if not (isinstance(value, str) and value.startswith(PREFIX)):
            continue
        data = data if data is not None else dict(event.data)
        data[field] = _open_value(event, field, value, ring)
    return event if data is None else Event(event.type, MappingProxyType(data))


def _open_value(event: Event, field: str, value: str, ring: KeyRing) -> str:
    key_id, _, blob = value[len(PREFIX):].partition(":")
    key = ring.opening_key(event.company_id, key_id)
    if key is None:
        return forgotten(field)
    try:
        raw = base64.urlsafe_b64decode(blob)
        return AESGCM(key).decrypt(raw[:12], raw[12:], _aad(event.company_id, event.type, field)).decode()
    except (InvalidTag, ValueError) as exc:
        raise SerializationError(f"{event.type}.{field} of {event.company_id} does not open with its key "
                                 f"{key_id}: altered, or sealed for another company or field") from exc


_RINGS: dict[tuple[str, str, str | None, str | None], KeyRing] = {}
_RINGS_LOCK = threading.Lock()


def ring_for(settings: Settings) -> KeyRing:
    """The process's key ring for this broker, prefix and principal."""
    ident = (settings.kafka_bootstrap, settings.topic_prefix, settings.kafka_principal,
             str(settings.kafka_credentials) if settings.kafka_credentials else None)
    with _RINGS_LOCK:
        ring = _RINGS.get(ident)
        if ring is None:
            ring = _RINGS[ident] = KeyRing(settings, settings.data_key_refresh_s)
        return ring


def sealed_fields(event_type: str) -> Mapping[str, str]:
    """The sealed fields of an event type with what a forgotten one reads as (for docs and tests)."""
    return {field: forgotten(field) for field in SEALED.get(event_type, ())}
