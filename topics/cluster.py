"""A local Kafka cluster (`cda kafka up --brokers 3`): N KRaft nodes from the same jars, each broker and
controller, one quorum, one set of principals (the shared credentials file), small heaps. Node i listens on
`CDA_KAFKA_PORT + 2i` for clients and the next port for its controller. Topics are replicated on up to 3 of them
(`CDA_KAFKA_REPLICATION`, `CDA_KAFKA_MIN_INSYNC`), so one node lost loses nothing a producer was told was written.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.settings import Settings
from topics import credentials
from topics.broker import LocalBroker


@dataclass
class LocalCluster:
    nodes: list[LocalBroker] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def start(self, wait_s: float = 120.0, env: dict[str, str] | None = None,
              preexec_fn: Callable[[], None] | None = None) -> None:
        """Start every member (not running yet), then wait until each serves metadata (a quorum forms only once
        most are up); `env` and `preexec_fn` for a supervisor that owns them (`core.children`)."""
        procs = [node.launch(env, preexec_fn) for node in self.nodes]
        for node, proc in zip(self.nodes, procs, strict=True):
            node.wait_ready(wait_s, proc)

    def stop(self, wait_s: float = 60.0) -> bool:
        return any([node.stop(wait_s) for node in self.nodes])


def cluster_of(data_dir: Path, lib_dir: Path, ports: list[tuple[int, int]], heap: str = "256m", auth: bool = True,
               credentials_path: Path | None = None, cluster_id: str | None = None) -> LocalCluster:
    """A cluster whose node i keeps its data in `<data_dir>/node-<i+1>` and listens on `ports[i]`
    (client, controller). Its id is kept in `<data_dir>/cluster.id`, so a restart finds the same cluster."""
    data_dir.mkdir(parents=True, exist_ok=True)
    id_file = data_dir / "cluster.id"
    if cluster_id is None:
        if not id_file.exists():
            id_file.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
        cluster_id = id_file.read_text().strip()
    voters = tuple((i + 1, controller) for i, (_, controller) in enumerate(ports))
    shared = credentials_path or data_dir / "credentials.json"
    return LocalCluster([
        LocalBroker(data_dir=data_dir / f"node-{i + 1}", lib_dir=lib_dir, port=port, controller_port=controller,
                    heap=heap, auth=auth, credentials_path=shared, node_id=i + 1, voters=voters,
                    cluster_id=cluster_id)
        for i, (port, controller) in enumerate(ports)])


def cluster_from_settings(settings: Settings) -> LocalCluster:
    """The local cluster the settings describe: `CDA_KAFKA_BROKERS` nodes under `<home>/kafka`."""
    ports = [(settings.kafka_port + 2 * i, settings.kafka_port + 2 * i + 1) for i in range(settings.kafka_brokers)]
    return cluster_of(settings.kafka_dir, settings.kafka_lib, ports, heap=settings.kafka_cluster_heap,
                      auth=settings.kafka_auth, credentials_path=credentials.credentials_file(settings))
