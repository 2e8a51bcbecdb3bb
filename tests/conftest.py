"""Shared fixtures: a real Kafka broker started once per session, and per-test topic namespaces.

The broker comes from `CDA_KAFKA_BOOTSTRAP` when set; from testcontainers when a Docker engine answers and holds the
compose stack's Kafka image (`CDA_TEST_KAFKA_IMAGE`, default the stand-in `scripts/docker_images.sh` builds), run
by compose's own `deploy/kafka/start.sh`, secured the same way, on the host's loopback; and otherwise from the
project's own local broker (Maven-fetched jars), in a temporary folder. `CDA_TEST_DOCKER=0` skips the container.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings, get_settings, settings_env
from projections.migrate import migrate
from projections.store import ProjectionStore
from tests.helpers import free_port
from topics.admin import apply_catalog, delete_topics
from topics.broker import LocalBroker
from topics.catalog import CATALOG
from topics.connection import topic_name
from topics.credentials import generate

ROOT = Path(__file__).resolve().parents[1]
KAFKA_IMAGE = os.environ.get("CDA_TEST_KAFKA_IMAGE", "cda-kafka:local")


def _docker_has(image: str) -> bool:
    """Whether a Docker engine answers and holds `image` (no registry is asked: none may be reachable)."""
    try:
        import docker  # testcontainers' dependency; present with the dev extra

        client = docker.from_env(timeout=3)
        client.ping()
        client.images.get(image)
        return True
    except Exception:
        return False


@contextmanager
def container_broker(folder: Path) -> Iterator[LocalBroker]:
    """The compose stack's broker in a container (testcontainers), with fresh passwords in `folder`, on free loopback
    ports of the host's network; ready when the operator's login lists it, as the local broker is."""
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")  # its reaper image cannot be pulled here
    from testcontainers.core.container import DockerContainer

    passwords = generate(folder / "credentials.json")
    port, controller = free_port(), free_port()
    container = (DockerContainer(KAFKA_IMAGE)
                 .with_kwargs(network_mode="host", entrypoint=["/bin/sh", "/cda/start.sh"])
                 .with_volume_mapping(str(ROOT / "deploy" / "kafka" / "start.sh"), "/cda/start.sh", "ro")
                 .with_envs(KAFKA_CDA_PORT=str(port), KAFKA_CDA_CONTROLLER_PORT=str(controller),
                            KAFKA_CDA_ADVERTISED_HOST="127.0.0.1",
                            **{f"SCRAM_{name.upper()}_PASSWORD": pw for name, pw in passwords.items()}))
    with container:
        broker = LocalBroker(data_dir=folder, lib_dir=folder, port=port, controller_port=controller,
                             credentials_path=folder / "credentials.json")
        broker.wait_ready(120)
        yield broker


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The bootstrap address of a real broker for the whole session."""
    if bootstrap := os.environ.get("CDA_KAFKA_BOOTSTRAP"):
        yield bootstrap
        return
    if os.environ.get("CDA_TEST_DOCKER", "1") == "1" and _docker_has(KAFKA_IMAGE):
        with container_broker(tmp_path_factory.mktemp("kafka")) as broker:
            os.environ["CDA_KAFKA_CREDENTIALS"] = str(broker.credentials_file)
            yield broker.bootstrap
        return
    broker = local_broker(tmp_path_factory.mktemp("kafka"))
    broker.start()
    # every Settings() of the session, and every child process, logs in with this broker's principals
    os.environ["CDA_KAFKA_CREDENTIALS"] = str(broker.credentials_file)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


def local_broker(data_dir: Path) -> LocalBroker:
    """A broker on free ports with its data in `data_dir`, sharing the project's fetched jars."""
    return LocalBroker(data_dir=data_dir, lib_dir=Settings().kafka_lib, port=free_port(), controller_port=free_port())


@pytest.fixture(scope="session")
def clickhouse_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A ClickHouse server (`CDA_TEST_CLICKHOUSE_URL`) or the embedded chDB engine, one folder per session.

    chDB allows one folder per process, so tests share the engine and isolate themselves by database.
    """
    return os.environ.get("CDA_TEST_CLICKHOUSE_URL") or f"chdb://{tmp_path_factory.mktemp('chdb')}"


@pytest.fixture
def settings(kafka_bootstrap: str, clickhouse_dsn: str, tmp_path: Path) -> Settings:
    """Settings for one test: the session broker and engine, a private topic prefix, database and home."""
    test_id = uuid.uuid4().hex[:10]
    return Settings(
        home=tmp_path / "home",
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=f"t{test_id}.",
        kafka_timeout_s=10,
        clickhouse_url=clickhouse_dsn,
        clickhouse_database=f"t_{test_id}",
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[ProjectionStore]:
    """The test's own database, migrated; dropped afterwards."""
    store = ProjectionStore.from_settings(settings)
    migrate(store)
    yield store
    store.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
    store.close()  # chDB counts open clients; the outage test needs them all closed


@pytest.fixture
def catalog(settings: Settings) -> Iterator[Callable[..., Settings]]:
    """Apply (part of) the catalog under the test's prefix; the topics are deleted afterwards."""
    created: list[str] = []

    def apply(*names: str) -> Settings:
        specs = tuple(s for s in CATALOG if not names or s.name in names)
        apply_catalog(settings, specs)
        created.extend(topic_name(settings, s.name) for s in specs)
        return settings

    yield apply
    if created:
        delete_topics(settings, created)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny local base model: the one `scripts/dev.sh` built, or a fresh build for this session."""
    pytest.importorskip("transformers")
    from trainer.tiny_model import MARKER, build, recipe

    built = Path(Settings().base_model_path)
    if (built / MARKER).exists() and json.loads((built / MARKER).read_text()) == recipe():
        return str(built)
    return str(build(tmp_path_factory.mktemp("tiny") / "tiny"))  # none yet, or built by an older recipe


@pytest.fixture(scope="session")
def vllm_url(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real vLLM server on the tiny model with runtime LoRA loading, once per session."""
    pytest.importorskip("vllm")
    from inference.server import VllmServer

    server = VllmServer(Settings(home=tmp_path_factory.mktemp("vllm-home"), base_model=tiny_model,
                                 vllm_url=f"http://127.0.0.1:{free_port()}"))
    server.start()
    try:
        yield server.settings.vllm_url
    finally:
        server.stop()


@pytest.fixture
def api(catalog: Callable[..., Settings], store: ProjectionStore) -> Iterator[object]:
    """The REST API on the test's own topics and database, projections in the same process (tests/api/api_support.py)."""
    from tests.api.api_support import api_stack

    yield from api_stack(catalog, store)


@pytest.fixture
def cli_for(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Callable[..., Any]]]:
    """`cda` run in-process on exactly the given settings (their `settings_env`), its tables `columns` wide so
    that whole values show: `cli = cli_for(settings); cli("tools", "list")`."""
    from typer.testing import CliRunner

    from cda.cli.main import app

    def make(settings: Settings, columns: int = 250) -> Callable[..., Any]:
        for name in [k for k in os.environ if k.startswith("CDA_")]:
            monkeypatch.delenv(name)
        for name, value in settings_env(settings, base={}).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("COLUMNS", str(columns))
        get_settings.cache_clear()
        runner = CliRunner()
        return lambda *args, input=None: runner.invoke(app, list(args), input=input)

    yield make
    get_settings.cache_clear()


@pytest.fixture
def example_api(tmp_path: Path) -> Iterator[str]:
    """The demo company's own API (`examples.company_api`) on a free loopback port, its store in the test's folder."""
    from examples.company_api import run_in_thread

    with run_in_thread(tmp_path / "acme.sqlite3") as url:
        yield url
