"""BENCH R6: the attacks of issue 23, tried against a running stack as the tests try them: `cda api serve` in its
own process on the secured broker (SASL/SCRAM, ACLs) and an embedded chDB, Kafka clients with and without the
parts' logins, and the bridge. Each attack is refused, or not; leaks (a listener reached, a secret or a forgotten
company's content read back), or not; hangs (past its bound, or the API stopped answering others), or not.

Prints a table, then `BENCH R6 tried=… refused=… leaked=… hung=…`. Goal: every one refused, nothing leaked, nothing
hung. Not tried here (each has its own test): parts dying with their parent (tests/cda/test_up_kill.py,
tests/inference/test_inference_kill.py), DNS inside the bridge's deadline (tests/streams/test_bridge.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import bench_line, ensure_broker, scratch_topics  # noqa: E402
from benchmarks.r6_stack import OPERATOR, SECRET, Listener, Outcome, Stack, Tried, auth, tool_body  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.workers import wait_until  # noqa: E402
from topics.catalog import CATALOG  # noqa: E402


def remote_ref(stack: Stack, key: str, listener: Listener, parameters: dict[str, Any]) -> Outcome:
    before = len(listener.hits)
    answer = stack.http.post("/company-automation/register-tools", headers=auth(key),
                             json={"tools": [tool_body("ref_tool", parameters)]})
    return Outcome(answer.status_code == 422, len(listener.hits) > before, f"{answer.status_code}")


def openapi_bomb(stack: Stack, key: str, listener: Listener) -> Outcome:
    """A 3 KB document whose $refs expand to 10^9 nodes; others must be answered while it is refused."""
    schemas: dict[str, Any] = {f"L{i}": {"type": "object", "properties": {
        f"p{j}": {"$ref": f"#/components/schemas/L{i + 1}"} for j in range(10)}} for i in range(9)}
    schemas["L9"] = {"type": "string"}
    document = {"openapi": "3.0.0", "info": {"title": "bomb", "version": "1"}, "components": {"schemas": schemas},
                "paths": {"/x": {"post": {"operationId": "x", "requestBody": {"content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/L0"}}}}}}}}
    answers: list[bool] = []
    probe = threading.Thread(target=lambda: answers.append(stack.responsive()))
    probe.start()
    answer = stack.http.post("/company-automation/register-tools", headers=auth(key),
                             json={"openapi": document, "base_url": "https://billing.example:443"})
    probe.join()
    return Outcome(answer.status_code in (413, 422) and all(answers), False, f"{answer.status_code}, others answered: {answers}")


# -- 4: Kafka ---------------------------------------------------------------------------------------------------
def kafka_write(settings: Settings, principal: str | None) -> Outcome:
    """Mint a key for a company on `company_keys`: as `principal`, or with no login at all (None)."""
    from confluent_kafka import Producer

    from topics.connection import client_config, topic_name
    from topics.events import Event
    from topics.serde import serde_for

    as_part = settings.model_copy(update={"kafka_principal": principal or "operator"})
    config = client_config(as_part, **{"message.timeout.ms": 5000})
    if principal is None:
        config = {k: v for k, v in config.items() if not k.startswith(("sasl.", "security."))}
    event = Event.new("company_key_issued", "victim", key_id="kattack", salt="s", key_hash="h")
    results: list[Any] = []
    producer = Producer(config)
    producer.produce(topic_name(settings, "company_keys"), serde_for().encode(event, "company_keys"),
                     key=b"victim/kattack", on_delivery=lambda err, _msg: results.append(err))
    producer.flush(10)
    delivered = bool(results) and results[0] is None
    return Outcome(not delivered, delivered, str(results[0]) if results else "no answer")


def kafka_read(settings: Settings, principal: str | None) -> Outcome:
    """Read a company's requests on `company_data` as `principal` (or without a login)."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    from topics.connection import client_config, topic_name

    as_part = settings.model_copy(update={"kafka_principal": principal or "operator"})
    config = client_config(as_part, **{"group.id": f"r6-{uuid.uuid4()}", "enable.auto.commit": False})
    if principal is None:
        config = {k: v for k, v in config.items() if not k.startswith(("sasl.", "security."))}
    consumer = Consumer(config)
    try:
        tp = TopicPartition(topic_name(settings, "company_data"), 0, 0)
        try:
            consumer.get_watermark_offsets(tp, timeout=5)
        except KafkaException as exc:
            return Outcome(True, False, exc.args[0].name() if exc.args else str(exc))
        consumer.assign([tp])
        msg = consumer.poll(3)
        if msg is not None and msg.error() is not None:
            return Outcome(True, False, msg.error().name())
        return Outcome(False, msg is not None, "read")
    finally:
        consumer.close()


# -- 5: secrets -------------------------------------------------------------------------------------------------
class NamesToLoopback:
    """Every name resolves to 127.0.0.1 (the listener): whatever guard there is, nothing else stands in the way."""

    async def resolve(self, host: str, port: int) -> list[Any]:
        import ipaddress

        return [ipaddress.ip_address("127.0.0.1")]


def secret_elsewhere(settings: Settings, listener: Listener, bound_to: str, url: str, allowed: frozenset[str]) -> Outcome:
    """A tool whose secret is bound to `bound_to`, called at `url` (reaching the listener), with `allowed` the
    company's allow-list: the secret must not go there."""
    import os

    from streams.agent_settings import AgentSettings
    from streams.bridge import ApiBridge
    from streams.secrets import EnvSecrets, SecretResolver
    from streams.tools import Tool

    tool = Tool(company_id="victim", name="pay", description="Pay", method="POST", url=url,
                parameters={"type": "object"}, secret_ref="env:R6_TOKEN")
    agent = AgentSettings(company_id="victim", allowed_hosts=allowed,
                          allowed_secrets=frozenset({"env:R6_TOKEN"}), secret_hosts={"env:R6_TOKEN": frozenset({bound_to})})
    before = len(listener.hits)

    async def run() -> Any:
        bridge = ApiBridge(settings, secrets=SecretResolver([EnvSecrets({**os.environ, "R6_TOKEN": SECRET})]),
                           resolver=NamesToLoopback())
        try:
            return await bridge.call(tool, {}, "r6", agent)
        finally:
            await bridge.aclose()

    outcome = asyncio.run(run())
    reached = listener.hits[before:]
    leaked = any(SECRET in " ".join(h.values()) for _, h in reached)
    return Outcome(bool(outcome.error_kind) and not reached, leaked, f"{outcome.error_kind or 'sent'}: {outcome.error}"[:90])


def file_secret_outside(settings: Settings) -> Outcome:
    """`file:/etc/hostname` through the bridge's own secret resolver: outside its folder, so never read."""
    from streams.bridge import ApiBridge
    from streams.errors import StreamsError

    bridge = ApiBridge(settings)
    try:
        value = bridge._secrets.resolve("file:/etc/hostname")  # the resolver the bridge itself uses
    except StreamsError as exc:
        return Outcome(True, False, type(exc).__name__)
    finally:
        asyncio.run(bridge.aclose())
    return Outcome(False, bool(value), "read a file outside the secrets folder")


# -- 6: per-key caps ----------------------------------------------------------------------------------------------
def held_streams(stack: Stack, key: str) -> Outcome:
    """Two places per key: a third event stream of the same key is refused while the first two are open."""
    job = stack.http.post("/company-automation/process", headers=auth(key), json={"task": "t", "data": {"a": 1}}).json()
    url = f"{stack.url}/company-automation/jobs/{job['job_id']}/events"
    wait_until(lambda: stack.http.get(url.removesuffix("/events"), headers=auth(key)).status_code == 200, 20, 0.1)
    with ExitStack() as held:  # the streams stay open (read no further than their headers) until the third is tried
        opened = [held.enter_context(held.enter_context(httpx.Client(timeout=30)).stream("GET", url, headers=auth(key)))
                  for _ in range(2)]
        try:
            third = httpx.get(url, headers=auth(key), timeout=5)
        except httpx.ReadTimeout:
            return Outcome(False, False, f"{[o.status_code for o in opened]} then a third stream was served")
        return Outcome(third.status_code == 429, False, f"{[o.status_code for o in opened]} then {third.status_code}")


def memory_delete_unknown(stack: Stack, key: str) -> Outcome:
    """Deleting an entry that does not exist: a 404 from the API's own table, not a fold of everyone's memory."""
    answer = stack.http.delete("/company-automation/memory/nope-" + uuid.uuid4().hex[:8], headers=auth(key))
    return Outcome(answer.status_code == 404, False, str(answer.status_code))


# -- 7: forgetting ----------------------------------------------------------------------------------------------
def forgotten_company(stack: Stack) -> Outcome:
    """A company sends a marker, is deleted; a replay from the beginning must not read the marker, its key is dead."""
    from topics.consumer import EventConsumer
    from topics.positions import Position
    from topics.sealing import KeyRing, SealingSerde
    from topics.serde import serde_for

    marker = f"r6-marker-{uuid.uuid4().hex}"
    key = stack.company("doomed")
    stack.http.post("/company-automation/process", headers=auth(key), json={"task": marker, "data": {"m": marker}})
    deleted = stack.http.delete("/admin/companies/doomed", headers=auth(OPERATOR))
    with EventConsumer(stack.settings, f"r6-{uuid.uuid4()}", serde=SealingSerde(serde_for(), KeyRing(stack.settings))) as c:
        c.assign("company_data", Position.beginning(), until_end=True)
        read = [r.event for r in c if r.event.company_id == "doomed"]
    leaked = any(marker in json.dumps(dict(e.data), default=str) for e in read)
    after = stack.http.get("/company-automation/tools", headers=auth(key)).status_code
    return Outcome(deleted.status_code == 200 and after == 401 and bool(read), leaked,
                   f"deleted {deleted.status_code}, key then {after}, {len(read)} records replayed")


# -- 8: the smaller ones ---------------------------------------------------------------------------------------
def revoked_key(stack: Stack) -> Outcome:
    key = stack.company("leaver")
    stack.http.post("/admin/companies/leaver/revoke-key", headers=auth(OPERATOR))
    key_id = key.split(".", 1)[0]
    revoked = stack.http.get("/company-automation/tools", headers=auth(f"{key_id}.forged"))
    unknown = stack.http.get("/company-automation/tools", headers=auth(f"cda_{uuid.uuid4().hex[:8]}.forged"))
    same = revoked.status_code == unknown.status_code == 401 and revoked.json() == unknown.json()
    return Outcome(same, "leaver" in revoked.text, f"{revoked.status_code}/{unknown.status_code}")


def idempotency_reuse(stack: Stack, key: str) -> Outcome:
    headers = {**auth(key), "Idempotency-Key": f"r6-{uuid.uuid4().hex[:8]}"}
    first = stack.http.post("/company-automation/process", headers=headers, json={"task": "a", "data": {"x": 1}})
    second = stack.http.post("/company-automation/process", headers=headers, json={"task": "b", "data": {"x": 2}})
    return Outcome(first.status_code == 202 and second.status_code == 409, False, f"{first.status_code}, {second.status_code}")


def portless_allow_list(stack: Stack, key: str) -> Outcome:
    answer = stack.http.put("/company-automation/agent-settings", headers=auth(key),
                            json={"allowed_hosts": ["billing.example"]})
    return Outcome(answer.status_code == 422, False, str(answer.status_code))


def attacks(stack: Stack, listener: Listener, victim: str, attacker: str) -> list[tuple[str, float, Callable[[], Outcome]]]:
    s = stack.settings
    return [
        ("1 tool schema $ref to a URL", 10, lambda: remote_ref(stack, attacker, listener, {"$ref": f"{listener.url}/s.json"})),
        ("1 nested $ref to a URL", 10, lambda: remote_ref(stack, attacker, listener, {
            "type": "object", "properties": {"a": {"$ref": f"{listener.url}/s.json"}}})),
        ("1 $ref to file:///dev/zero", 10, lambda: remote_ref(stack, attacker, listener, {"$ref": "file:///dev/zero"})),
        ("2 OpenAPI $ref expansion bomb", 15, lambda: openapi_bomb(stack, attacker, listener)),
        ("4 no login writes company_keys", 15, lambda: kafka_write(s, None)),
        ("4 agents' login writes company_keys", 15, lambda: kafka_write(s, "agents")),
        ("4 no login reads company_data", 15, lambda: kafka_read(s, None)),
        ("4 inference's login reads company_data", 15, lambda: kafka_read(s, "inference")),
        ("5 secret sent to a re-pointed host", 15, lambda: secret_elsewhere(
            s, listener, "billing.example:443", f"{listener.url}/pay", frozenset({listener.url.split("//")[1]}))),
        ("5 secret over plain http", 15, lambda: secret_elsewhere(
            s, listener, f"billing.example:{listener.url.rsplit(':', 1)[1]}",
            f"http://billing.example:{listener.url.rsplit(':', 1)[1]}/pay", frozenset())),
        ("5 file: secret outside its folder", 5, lambda: file_secret_outside(s)),
        ("6 a third held stream of one key", 15, lambda: held_streams(stack, victim)),
        ("6 memory delete of an unknown entry", 5, lambda: memory_delete_unknown(stack, attacker)),
        ("7 replay of a forgotten company", 60, lambda: forgotten_company(stack)),
        ("8 revoked key id names its company", 10, lambda: revoked_key(stack)),
        ("8 Idempotency-Key reused, other body", 10, lambda: idempotency_reuse(stack, attacker)),
        ("8 allow-list entry without a port", 10, lambda: portless_allow_list(stack, attacker)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    base = Settings()
    ensure_broker(base)
    listener = Listener()
    with scratch_topics(base, *(s.name for s in CATALOG)) as settings, tempfile.TemporaryDirectory() as home:
        stack = Stack(settings, Path(home))
        try:
            victim, attacker = stack.company("victim"), stack.company("attacker")
            tried: list[Tried] = []
            for name, bound_s, attack in attacks(stack, listener, victim, attacker):
                started = time.monotonic()
                try:
                    outcome = attack()
                except Exception as exc:  # noqa: BLE001 - an attack that breaks the harness counts as not refused
                    outcome = Outcome(False, False, f"error: {type(exc).__name__}: {exc}"[:120])
                seconds = time.monotonic() - started
                hung = seconds > bound_s or not stack.responsive()
                tried.append(Tried(name, outcome, seconds if not hung else max(seconds, bound_s + 1), bound_s))
        finally:
            stack.stop()
    print(f"{'attack':44} {'refused':8} {'leaked':7} {'hung':5} {'s':>6}  detail")
    for t in tried:
        print(f"{t.name:44} {str(t.outcome.refused):8} {str(t.outcome.leaked):7} {str(t.hung):5} {t.seconds:6.2f}  "
              f"{t.outcome.detail}")
    bench_line("R6", tried=len(tried), refused=sum(t.outcome.refused for t in tried),
               leaked=sum(t.outcome.leaked for t in tried), hung=sum(t.hung for t in tried))


if __name__ == "__main__":
    main()
