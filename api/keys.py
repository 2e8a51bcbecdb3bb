"""Company API keys: made here, shown once, kept only as salted hashes on the compacted `company_keys` topic.

A key reads `cda_<key_id>.<secret>`: the key id is public (it names the key in events and logs), the secret is
32 random bytes that never leave the process that made it. `company_key_issued` carries the salt and
SHA-256(salt + secret); a caller's key is found by its id and compared in constant time. The secret has 256 bits
of entropy, so a slow password hash would add latency without adding strength. Keys survive restarts and
replays because they are events; `company_key_revoked` (compaction keeps it per key) refuses a key for good.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass

from topics.events import Event

PREFIX = "cda_"
HASH_PARAMS = "sha256(salt+secret)"


@dataclass(frozen=True)
class IssuedKey:
    """A new key: `key` is shown to its owner once; `event` (hash only) is what is produced."""

    key: str
    event: Event


@dataclass
class KeyRecord:
    company_id: str
    key_id: str
    salt: str = ""
    key_hash: str = ""
    revoked: bool = False


UNKNOWN_KEY = "unknown or revoked API key"
_NO_SALT = "00" * 16
_NO_HASH = "0" * 64


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def issue_key(company_id: str, replaces: list[str] | None = None) -> IssuedKey:
    """A fresh key for `company_id` and its `company_key_issued` event (which holds no secret)."""
    key_id, secret, salt = secrets.token_hex(8), secrets.token_urlsafe(32), secrets.token_hex(16)
    event = Event.new("company_key_issued", company_id, key_id=key_id, salt=salt, key_hash=_hash(salt, secret),
                      hash_params=HASH_PARAMS, replaces=list(replaces or []))
    return IssuedKey(f"{PREFIX}{key_id}.{secret}", event)


def revocation(company_id: str, key_id: str, reason: str) -> Event:
    return Event.new("company_key_revoked", company_id, key_id=key_id, reason=reason)


def split_key(key: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    if not key.startswith(PREFIX) or "." not in key or len(key) > 200:
        return None
    key_id, _, secret = key[len(PREFIX):].partition(".")
    return (key_id, secret) if key_id and secret else None


class KeyTable:
    """key id -> what the log says about it, folded from `company_keys`; thread-safe."""

    def __init__(self) -> None:
        self._keys: dict[str, KeyRecord] = {}
        self._lock = threading.Lock()

    def apply(self, event: Event) -> None:
        key_id = str(event["key_id"])
        with self._lock:
            record = self._keys.setdefault(key_id, KeyRecord(event.company_id, key_id))
            if record.company_id != event.company_id:  # a key id belongs to the company that first named it
                return
            if event.type == "company_key_issued":  # a revocation sticks, whatever order compaction left
                record.salt, record.key_hash = str(event["salt"]), str(event["key_hash"])
            elif event.type == "company_key_revoked":
                record.revoked = True

    def check(self, key: str) -> tuple[str | None, str]:
        """(company id, "") for a valid key; (None, reason) otherwise — the reason never repeats the key."""
        parts = split_key(key)
        if parts is None:
            return None, "malformed API key (expected cda_<id>.<secret>)"
        key_id, secret = parts
        with self._lock:
            record = self._keys.get(key_id)
        if record is None or not record.key_hash:  # the same work as for a known key: timing tells nothing
            hmac.compare_digest(_hash(_NO_SALT, secret), _NO_HASH)
            return None, UNKNOWN_KEY
        if not hmac.compare_digest(_hash(record.salt, secret), record.key_hash) or record.revoked:
            return None, UNKNOWN_KEY  # revoked reads as unknown: a key id never names its company
        return record.company_id, ""

    def companies(self) -> set[str]:
        with self._lock:
            return {r.company_id for r in self._keys.values()}

    def active_keys(self, company_id: str) -> list[str]:
        with self._lock:
            return sorted(r.key_id for r in self._keys.values() if r.company_id == company_id and not r.revoked)
