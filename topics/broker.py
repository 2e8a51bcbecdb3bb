"""A real single-node Apache Kafka broker (KRaft, broker+controller) run from Maven-fetched jars.

`cda kafka up` fetches the jars once (Maven), formats the storage once, starts `kafka.Kafka` in the
background with its data under `<home>/kafka`, and waits until it answers. `down` sends SIGTERM,
which Kafka handles with a clean shutdown, so a restart keeps every event.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.children import alive
from core.settings import Settings
from topics import credentials
from topics.broker_config import scram_args, server_properties
from topics.credentials import OPERATOR, Login
from topics.errors import BrokerSetupError

POM = Path(__file__).parent / "kafka" / "pom.xml"
LOG4J_CONFIG = Path(__file__).parent / "kafka" / "log4j2.yaml"


@dataclass
class LocalBroker:
    """One local broker: its data folder, jar folder and ports."""

    data_dir: Path
    lib_dir: Path
    port: int = 9092
    controller_port: int = 9093
    heap: str = "512m"
    auth: bool = True  # SASL/SCRAM on the client listener, PLAIN on the controller's, ACLs checked
    credentials_path: Path | None = None  # default <data_dir>/credentials.json
    # a member of a cluster (`topics.cluster`): its node id, every voter's (node id, controller port), the shared id
    node_id: int = 1
    voters: tuple[tuple[int, int], ...] = ()
    cluster_id: str | None = None

    @property
    def bootstrap(self) -> str:
        return f"localhost:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_dirs(self) -> Path:
        return self.data_dir / "data"

    @property
    def credentials_file(self) -> Path:
        return self.credentials_path or self.data_dir / "credentials.json"

    def secured(self) -> bool:
        """Whether this broker authenticates: asked for, and either new or formatted with its credentials (a folder
        formatted before authentication existed keeps running open; `cda kafka up` says so)."""
        return self.auth and (not self.formatted() or self.credentials_file.exists())

    def passwords(self) -> dict[str, str]:
        """Every principal's password, made on first use (before the storage is formatted with them)."""
        return credentials.read(self.credentials_file) or credentials.generate(self.credentials_file)

    def secrets(self) -> dict[str, str] | None:
        """The passwords its config and storage take: None for an open broker."""
        return self.passwords() if self.secured() else None

    def operator_login(self) -> Login | None:
        """How this module's own admin calls (readiness) authenticate: as the operator, when the broker asks."""
        return Login(OPERATOR, self.passwords()[OPERATOR]) if self.secured() else None

    # -- fetch ------------------------------------------------------------------------------------
    def jars_present(self) -> bool:
        return any(self.lib_dir.glob("kafka_2.13-*.jar")) and any(self.lib_dir.glob("log4j-core-*.jar"))

    def fetch(self) -> None:
        """Copy Kafka's jars and a Log4j2 binding into `lib_dir` with Maven (once)."""
        if self.jars_present():
            return
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerSetupError("Maven (mvn) is needed to fetch the Kafka jars; install it (apt-get install maven)")
        self.lib_dir.mkdir(parents=True, exist_ok=True)
        cmd = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies", f"-DoutputDirectory={self.lib_dir}"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0 or not self.jars_present():
            raise BrokerSetupError(f"fetching Kafka jars failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")

    # -- format -----------------------------------------------------------------------------------
    def write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = server_properties(self.node_id, self.port, self.controller_port, self.voters, self.log_dirs,
                                  self.secrets())
        credentials.write_private(self.config_file, "".join(f"{k}={v}\n" for k, v in props.items()))

    def formatted(self) -> bool:
        return (self.log_dirs / "meta.properties").exists()

    def format(self) -> None:
        """Format KRaft storage once; a formatted folder (and its events) is left alone."""
        self.write_config()
        if self.formatted():
            return
        cluster_id = self.cluster_id or base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        result = subprocess.run(
            [*self._java(), "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",  # "=": an id may start with "-"
             "-c", str(self.config_file), *([] if self.voters else ["--standalone"]), *scram_args(self.secrets())],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise BrokerSetupError(f"formatting Kafka storage in {self.log_dirs} failed:\n{result.stderr[-2000:]}")

    # -- run --------------------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The broker's pid when it is running, else None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if not _alive(pid):  # gone, or a killed child of ours not yet reaped (a zombie answers kill(0))
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def answers(self, timeout_s: float = 1.0) -> bool:
        """Whether something accepts connections on the broker port."""
        try:
            with socket.create_connection(("localhost", self.port), timeout=timeout_s):
                return True
        except OSError:
            return False

    def start(self, wait_s: float = 90.0, env: dict[str, str] | None = None,
              preexec_fn: Callable[[], None] | None = None) -> None:
        """Fetch, format and start the broker in the background, then wait until it serves metadata (`env` and
        `preexec_fn` for a supervisor that owns it: `core.children`)."""
        proc = self.launch(env, preexec_fn)
        self.wait_ready(wait_s, proc)

    def launch(self, env: dict[str, str] | None = None,
               preexec_fn: Callable[[], None] | None = None) -> subprocess.Popen[bytes] | None:
        """Fetch, format and start the broker's process without waiting for it (a cluster starts every member
        before any can answer); None when it already runs."""
        if self.pid() is not None:
            return None
        if self.answers():
            raise BrokerSetupError(f"port {self.port} is taken by another process; set CDA_KAFKA_PORT")
        self.fetch()
        self.format()
        log = self.log_file.open("ab")
        proc = subprocess.Popen(
            [*self._java(f"-Xmx{self.heap}", f"-Dlog4j2.configurationFile={LOG4J_CONFIG}"),
             "kafka.Kafka", str(self.config_file)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env=env, preexec_fn=preexec_fn,
        )
        self.pid_file.write_text(str(proc.pid))
        return proc

    def wait_ready(self, wait_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
        from confluent_kafka.admin import AdminClient

        from topics.connection import LIBRDKAFKA_LOG

        deadline = time.monotonic() + wait_s
        login = self.operator_login()
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "logger": LIBRDKAFKA_LOG,
                             **(login.librdkafka() if login else {})})
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise BrokerSetupError(f"the broker exited with {proc.returncode}; see {self.log_file}:\n{self._log_tail()}")
            if self.answers():
                try:
                    if admin.list_topics(timeout=2).brokers:
                        return
                except Exception:  # not ready yet: KafkaException until the broker registers
                    pass
            time.sleep(0.3)
        raise BrokerSetupError(f"the broker on {self.bootstrap} did not answer within {wait_s:.0f}s; see {self.log_file}")

    def stop(self, wait_s: float = 60.0) -> bool:
        """SIGTERM (Kafka's clean shutdown), then wait; SIGKILL only past the bound. False if not running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def _java(self, *jvm_args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise BrokerSetupError("Java 17+ is needed to run the Kafka broker; "
                                   "install it (apt-get install openjdk-17-jre-headless)")
        return [java, *jvm_args, "-cp", f"{self.lib_dir}/*"]

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def _alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie child of ours is reaped and counts as gone)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return alive(pid)


def from_settings(settings: Settings) -> LocalBroker:
    """The local broker the settings describe (data and jars under CDA_HOME)."""
    return LocalBroker(
        data_dir=settings.kafka_dir,
        lib_dir=settings.kafka_lib,
        port=settings.kafka_port,
        controller_port=settings.kafka_controller_port,
        heap=settings.kafka_heap,
        auth=settings.kafka_auth,
        credentials_path=credentials.credentials_file(settings),
    )
