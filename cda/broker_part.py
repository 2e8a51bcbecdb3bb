"""Kafka as a part of `cda up`: one KRaft node, or a local cluster of `CDA_KAFKA_BROKERS` nodes (`topics.cluster`),
started from the jars under the cda home unless the bootstrap names brokers cda up does not own. A node that
dies is restarted by itself (its data kept, so it rejoins the quorum and catches up its replicas); the other
parts, whose clients know every node, go on meanwhile."""

from __future__ import annotations

import time
from pathlib import Path

from cda.supervisor import EXTERNAL, FAILED, READY, STARTING, STOPPED, STOPPING, Backoff, Part, PartSpec
from core.children import die_with_parent
from core.settings import Settings
from topics.broker import LocalBroker, from_settings
from topics.cluster import LocalCluster, cluster_from_settings


def local_nodes(settings: Settings) -> list[LocalBroker]:
    return cluster_from_settings(settings).nodes if settings.kafka_brokers > 1 else [from_settings(settings)]


def on_cluster(settings: Settings, brokers: int) -> Settings:
    """`settings` for a local cluster of `brokers` nodes (`cda up --kafka-brokers N`): the bootstrap lists them,
    and catalog topics are replicated on up to 3 of them with one fewer in sync, so one node lost loses nothing."""
    update: dict[str, object] = {"kafka_brokers": brokers}
    if brokers > 1:
        update["kafka_bootstrap"] = cluster_from_settings(settings.model_copy(update=update)).bootstrap
        update["kafka_replication"] = min(3, brokers)
        update["kafka_min_insync"] = min(3, brokers) - 1
    return settings.model_copy(update=update)


class BrokerPart(Part):
    """The node or nodes, owned when cda up started them (then stopped last, with SIGTERM)."""

    def __init__(self, settings: Settings, env: dict[str, str], log_dir: Path) -> None:
        self.cluster = LocalCluster(local_nodes(settings))  # of one node on the defaults
        self.nodes = self.cluster.nodes
        self.settings = settings
        self.local = settings.kafka_bootstrap == self.cluster.bootstrap
        super().__init__(PartSpec("kafka", [], settings.kafka_bootstrap), env, log_dir)
        self.log_path = self.nodes[0].log_file
        self.status.log = str(self.log_path)
        self.owned = False

    def _pid(self) -> int | None:
        return self.nodes[0].pid()

    def _size(self) -> str:
        return f"{len(self.nodes)} nodes" if len(self.nodes) > 1 else ""

    def start(self) -> None:
        from topics.admin import apply_catalog

        if not self.local:
            self._set(EXTERNAL, detail="not started by cda up")
        elif all(node.pid() is not None for node in self.nodes):
            self._set(READY, pid=self._pid(), detail="already running before cda up; left running")
        else:
            self._set(STARTING, detail=self._size())
            self.owned = True  # before start: a stop signal during start-up still stops it (by its pid files)
            self.cluster.start(max(90.0, 60.0 * len(self.nodes)), env=self.env, preexec_fn=die_with_parent())
            self.started_at = time.monotonic()
            self._set(READY, pid=self._pid(), detail=self._size())
        apply_catalog(self.settings)

    def check(self, backoff: Backoff, stopping: bool) -> bool:
        if not self.owned or stopping:
            return False
        down = [node for node in self.nodes if node.pid() is None]
        if not down:
            if self.failures and time.monotonic() - self.started_at >= backoff.healthy_after_s:
                self.failures = 0
            return self._set(READY, pid=self._pid(),
                             detail=self._size() if self.status.state == READY else self.status.detail)
        if self.restart_at is None:
            return self._restart_later(backoff, "exited" if len(self.nodes) == 1 else
                                       f"node {', '.join(str(n.node_id) for n in down)} exited")
        if time.monotonic() >= self.restart_at:
            self.status.restarts += 1
            self.restart_at = None
            try:
                for node in down:
                    node.start(env=self.env, preexec_fn=die_with_parent())
            except Exception as exc:  # noqa: BLE001 - shown in the table; tried again after the next pause
                self._set(FAILED, detail=str(exc).splitlines()[0][:120])
                self.restart_at = time.monotonic() + backoff.pause(self.failures + 1)
                return True
            self.started_at = time.monotonic()
            self._set(READY, pid=self._pid(), detail=f"restarted ({self.status.restarts}x) {self._size()}".strip())
            return True
        return False

    def signal_stop(self) -> None:
        if self.owned:
            self._set(STOPPING)

    def wait_stopped(self) -> None:
        if self.owned:
            self.cluster.stop()
            self._set(STOPPED, detail="clean shutdown (SIGTERM)")
