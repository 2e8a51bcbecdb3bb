"""Shared fixtures: a real Kafka broker started once per session, and per-test topic namespaces.

The broker comes from `CDA_KAFKA_BOOTSTRAP` when set, from testcontainers when a Docker engine answers,
and otherwise from the project's own local broker (Maven-fetched jars), in a temporary folder.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
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


def _docker_answers() -> bool:
    try:
        import docker  # testcontainers' dependency; present with the dev extra

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The bootstrap address of a real broker for the whole session."""
    if bootstrap := os.environ.get("CDA_KAFKA_BOOTSTRAP"):
        yield bootstrap
        return
    if os.environ.get("CDA_TEST_DOCKER", "1") == "1" and _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as container:
            yield container.get_bootstrap_server()
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
