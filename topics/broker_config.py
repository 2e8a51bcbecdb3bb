"""What a local broker's `server.properties` says: KRaft roles and quorum, listeners, Kafka's own topics sized to
the cluster, and (when secured) SASL for clients and for the quorum with the ACL authorizer."""

from __future__ import annotations

from pathlib import Path

from topics.credentials import BROKER, CONTROLLER, MECHANISM, PRINCIPALS, SUPER_USERS


def server_properties(node_id: int, port: int, controller_port: int, voters: tuple[tuple[int, int], ...],
                      log_dirs: Path, passwords: dict[str, str] | None) -> dict[str, str]:
    """One member's config: a single node when `voters` is empty, else a member of those static voters;
    `passwords` (every principal's) secures it."""
    internal_rf = min(3, len(voters)) if voters else 1  # Kafka's own topics replicated like the catalog's
    return {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        **({"controller.quorum.voters": ",".join(f"{n}@localhost:{c}" for n, c in voters)} if voters
           else {"controller.quorum.bootstrap.servers": f"localhost:{controller_port}"}),
        "listeners": f"PLAINTEXT://localhost:{port},CONTROLLER://localhost:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://localhost:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        **(auth_properties(port, controller_port, passwords) if passwords else {}),
        "log.dirs": str(log_dirs),
        "num.partitions": "3",
        "offsets.topic.replication.factor": str(internal_rf),
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": str(internal_rf),
        "transaction.state.log.min.isr": str(max(1, internal_rf - 1)),
        "share.coordinator.state.topic.replication.factor": str(internal_rf),
        "share.coordinator.state.topic.min.isr": str(max(1, internal_rf - 1)),
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "log.cleaner.backoff.ms": "1000",
    }


def auth_properties(port: int, controller_port: int, pw: dict[str, str]) -> dict[str, str]:
    """SASL/SCRAM for clients and the broker itself, PLAIN inside the KRaft quorum (SCRAM credentials live in
    the metadata the controller serves, so the controller cannot use them), and the ACL authorizer."""
    return {
        "listeners": f"SASL_PLAINTEXT://localhost:{port},CONTROLLER://localhost:{controller_port}",
        "advertised.listeners": f"SASL_PLAINTEXT://localhost:{port}",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": MECHANISM,
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        f"listener.name.sasl_plaintext.{MECHANISM.lower()}.sasl.jaas.config":
            f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{BROKER}" '
            f'password="{pw[BROKER]}";',
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config":
            f'org.apache.kafka.common.security.plain.PlainLoginModule required username="{CONTROLLER}" '
            f'password="{pw[CONTROLLER]}" user_{CONTROLLER}="{pw[CONTROLLER]}";',
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": ";".join(f"User:{name}" for name in SUPER_USERS),
        "allow.everyone.if.no.acl.found": "false",
    }


def scram_args(passwords: dict[str, str] | None) -> list[str]:
    """`--add-scram` for every SCRAM principal, so credentials exist from the first start (KRaft keeps them in
    its metadata log; a broker cannot create the first one over a connection it would have to authenticate)."""
    if not passwords:
        return []
    return [arg for name in (*PRINCIPALS, BROKER)
            for arg in ("--add-scram", f"{MECHANISM}=[name={name},password={passwords[name]}]")]
