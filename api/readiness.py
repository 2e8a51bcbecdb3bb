"""Readiness of what the API and its jobs need, probed side by side and reused for a moment."""

from __future__ import annotations

import asyncio
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from confluent_kafka.admin import AdminClient
from starlette.concurrency import run_in_threadpool

from core.health import answers_ok
from topics.connection import admin_client, cluster_metadata

CACHE_S = 2.0  # an answer this fresh is reused: probes cost broker and store round trips
PROBE_S = 2.0  # bound on each probe; they run side by side, so an answer takes about this long at worst
NEEDED = ("broker", "store", "followers")  # without these no request is taken; without the others jobs wait


class Readiness:
    """The components' states, probed side by side and reused for `CACHE_S`; one probe round at a time.

    Holds one admin client for the process: a request made on a client that is then dropped never completes
    (librdkafka destroys the handle with its pending requests), which made every probe of the agents time out.
    """

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self._admin: AdminClient | None = None
        self._pool = ThreadPoolExecutor(max_workers=5, thread_name_prefix="ready-probe")
        self._lock = asyncio.Lock()
        self._answer: tuple[float, dict[str, str]] | None = None

    @property
    def admin(self) -> AdminClient:
        if self._admin is None:
            self._admin = admin_client(self.ctx.settings)
        return self._admin

    async def components(self) -> dict[str, str]:
        async with self._lock:  # callers arriving during a round share its answer
            if self._answer is None or time.monotonic() - self._answer[0] > CACHE_S:
                components = await run_in_threadpool(self._probe_all)
                self._answer = (time.monotonic(), components)
            return self._answer[1]

    def _probe_all(self) -> dict[str, str]:
        ctx = self.ctx
        probes = {
            "broker": lambda: cluster_metadata(ctx.settings.model_copy(update={"kafka_timeout_s": PROBE_S}),
                                               self.admin) and "ok",
            "store": lambda: ctx.store.query("SELECT 1") and "ok",
            "inference": self._inference,
            "agents": self._agents,
            "followers": lambda: "ok" if ctx.followers_healthy else "down: a keys or tools follower stopped",
        }
        futures = {name: self._pool.submit(probe) for name, probe in probes.items()}
        deadline = time.monotonic() + PROBE_S + 1
        out: dict[str, str] = {}
        for name, future in futures.items():
            try:
                out[name] = str(future.result(timeout=max(0.0, deadline - time.monotonic())))
            except FutureTimeout:
                out[name] = f"down: no answer within {PROBE_S + 1:.0f}s"
            except Exception as exc:  # noqa: BLE001 - any failure is a component that is down, named in the answer
                out[name] = f"down: {type(exc).__name__}: {str(exc)[:200]}"
        return out

    def _inference(self) -> str:
        url = f"{self.ctx.settings.inference_url}/health/ready"
        return "ok" if answers_ok(url, PROBE_S) else f"down: the gateway at {url} is not ready"

    def _agents(self) -> str:
        """ok when the agents' consumer group has members (someone turns requests into jobs).

        Asked with the older group listing (ListGroups + DescribeGroups, answered on a queue of its own), not
        `describe_consumer_groups`: on a request that times out while the group's coordinator is lost, that admin
        call aborts the whole process inside librdkafka 2.x (`rd_kafka_enq_once_del_source_return: Assertion
        eonce->refcnt > 0`, confluentinc/librdkafka#4605), seen here when a node of a cluster was killed."""
        group = f"{self.ctx.settings.topic_prefix}{self.ctx.settings.agents_group}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            groups = self.admin.list_groups(group, timeout=PROBE_S)
        return "ok" if any(g.id == group and g.members for g in groups) else f"down: no agents in consumer group {group}"

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
