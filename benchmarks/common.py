"""Benchmark helpers: a reachable broker (the local one is started when nothing answers) and BENCH lines."""

from __future__ import annotations

import argparse
import atexit
import signal
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from core.settings import Settings, settings_env
from projections.migrate import migrate
from projections.store import ProjectionStore
from topics.admin import apply_catalog, delete_topics
from topics.broker import from_settings
from topics.catalog import CATALOG
from topics.connection import topic_name
from topics.credentials import credentials_file


def bench_line(bench_id: str, **figures: float | int | str) -> str:
    """`BENCH <id> name=value ...`, the format every benchmark prints."""
    shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
    line = f"BENCH {bench_id} {shown}"
    print(line, flush=True)
    return line


def ensure_broker(settings: Settings) -> None:
    """Start the project's local broker when the configured one is the local default and does not answer; one
    started here is stopped when the benchmark exits (a broker that already ran is left running)."""
    broker = from_settings(settings)
    if settings.kafka_bootstrap == broker.bootstrap and not broker.answers():
        broker.start()
        atexit.register(broker.stop)


@contextmanager
def scratch_topics(settings: Settings, *names: str) -> Iterator[Settings]:
    """Catalog topics under a fresh prefix, deleted afterwards."""
    # the broker's credentials pinned: a part started with another home still logs in
    scoped = settings.model_copy(update={"topic_prefix": f"bench{uuid.uuid4().hex[:8]}.",
                                         "kafka_credentials": credentials_file(settings)})
    specs = tuple(s for s in CATALOG if s.name in names)
    apply_catalog(scoped, specs)
    try:
        yield scoped
    finally:
        delete_topics(scoped, [topic_name(scoped, s.name) for s in specs])


@contextmanager
def bench_store(settings: Settings) -> Iterator[ProjectionStore]:
    """A migrated scratch database: on the configured server, or an embedded chDB in a temporary folder."""
    dsn = settings.clickhouse_url or f"chdb://{tempfile.mkdtemp(prefix='cda-bench-chdb-')}"
    store = ProjectionStore(dsn, f"bench_{uuid.uuid4().hex[:8]}")
    migrate(store)
    try:
        yield store
    finally:
        store.command(f"DROP DATABASE IF EXISTS {store.database}")
        store.close()


def free_port() -> int:
    """A loopback port nothing listens on now (for a server the benchmark starts)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def median_of(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


@contextmanager
def running_vllm(settings: Settings) -> Iterator[Settings]:
    """The vLLM server at CDA_VLLM_URL, or one started for the benchmark (and stopped after it)."""
    from inference.server import VllmServer
    from inference.vllm_api import VllmApi
    from trainer.tiny_model import build

    if VllmApi(settings.vllm_url).ready():
        yield settings
        return
    if settings.base_model is None:
        build(Path(settings.base_model_path))
    server = VllmServer(settings)
    server.start()
    try:
        yield settings
    finally:
        server.stop()


def random_adapters(settings: Settings, count: int, rank: int = 8) -> list[Path]:
    """`count` distinct seeded adapters for the base model, in a temporary folder."""
    from inference.random_adapter import make_adapter

    root = Path(tempfile.mkdtemp(prefix="cda-bench-adapters-"))
    return [make_adapter(settings.base_model_path, root / f"a{i}", seed=i, rank=rank) for i in range(count)]


@contextmanager
def cda_process(settings: Settings, *args: str, log: str | None = None, stop_s: float = 60,
                env: dict[str, str] | None = None) -> Iterator[dict[str, str]]:
    """`cda <args>` running on exactly `settings` (`settings_env`, plus `env`), its output in `<home>/<log>`;
    SIGTERM afterwards (killed after `stop_s`). Yields the environment, for commands run beside it."""
    child_env = {**settings_env(settings), "COLUMNS": "200", **(env or {})}
    settings.home.mkdir(parents=True, exist_ok=True)
    with (settings.home / (log or f"{args[0]}.log")).open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "cda.cli.main", *args], env=child_env, stdout=out,
                                   stderr=subprocess.STDOUT)
        try:
            yield child_env
        finally:
            stop_child(process, stop_s)


def stop_child(process: subprocess.Popen[bytes], wait_s: float = 60) -> None:
    """SIGTERM to a child that still runs, so it stops in order; SIGKILL when it has not after `wait_s`."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(wait_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(30)


def cda_run(settings: Settings, *args: str, timeout_s: float = 7200) -> subprocess.CompletedProcess[str]:
    """`cda <args>` on exactly `settings`, to its end; its output captured."""
    return subprocess.run([sys.executable, "-m", "cda.cli.main", *args], env={**settings_env(settings), "COLUMNS": "200"},
                          capture_output=True, text=True, timeout=timeout_s)


def p99(values: list[float]) -> float:
    """The 99th percentile (the value itself for a single one)."""
    return statistics.quantiles(values, n=100)[98] if len(values) > 1 else values[0]


def options(doc: str | None, **defaults: int | float | str | tuple[str, ...]) -> argparse.Namespace:
    """The script's command line: `--name` for each default (`lag_seconds` is `--lag-seconds`), typed as its
    default (a tuple: the choices, the first by default), the script's docstring as help."""
    parser = argparse.ArgumentParser(description=doc)
    for name, default in defaults.items():
        flag = f"--{name.replace('_', '-')}"
        if isinstance(default, tuple):
            parser.add_argument(flag, choices=default, default=default[0])
        else:
            parser.add_argument(flag, type=type(default), default=default)
    return parser.parse_args()
