"""`cda api serve`: uvicorn running the app, and — with the embedded chDB store, which one process holds —
the projection runners in the same process, sharing one store, so job, adapter and tool reads are answered."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from api.app import create_app
from core.settings import Settings
from core.workers import WorkerThread, wait_until
from projections.catalog import PROJECTIONS
from projections.migrate import migrate
from projections.runner import ProjectionRunner
from projections.store import ProjectionStore
from topics.catalog import CATALOG
from topics.connection import cluster_metadata, topic_name
from topics.credentials import as_part
from topics.errors import UnknownTopic

log = logging.getLogger(__name__)


@contextmanager
def projections_alongside(settings: Settings, store: ProjectionStore, stop: threading.Event) -> Iterator[list[WorkerThread]]:
    """Every projection runner in this process when the store is embedded (else they run as their own process)."""
    workers: list[WorkerThread] = []
    if store.embedded and settings.api_embedded_projections:
        own = as_part(settings, "projections")  # the projections' principal, not the API's
        workers = [WorkerThread(f"projection-{p.name}", ProjectionRunner(own, store, p, flush_interval_s=0.1).run,
                                stop).start() for p in PROJECTIONS.values()]
    try:
        yield workers
    finally:
        stop.set()
        for worker in workers:
            worker.join(30)


def server(settings: Settings, store: ProjectionStore, host: str, port: int) -> uvicorn.Server:
    app = create_app(settings, store)
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on",
                                         timeout_graceful_shutdown=5))


def require_topics(settings: Settings) -> None:
    """Every catalog topic exists under the prefix, else one error naming the missing ones and the fix — said at
    once, rather than a follower or projection dying inside the server with a traceback."""
    present = cluster_metadata(settings).topics
    missing = [s.name for s in CATALOG if topic_name(settings, s.name) not in present]
    if missing:
        raise UnknownTopic(f"topic(s) {', '.join(missing)} do not exist on {settings.kafka_bootstrap}"
                           f"{f' under the prefix {settings.topic_prefix!r}' if settings.topic_prefix else ''}; "
                           "run `cda topics apply`")


def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM (uvicorn handles both)."""
    require_topics(settings)
    store = ProjectionStore.from_settings(settings)
    migrate(store)
    stop = threading.Event()
    try:
        with projections_alongside(settings, store, stop):
            server(settings, store, settings.api_host, settings.api_port).run()
    finally:
        store.close()


@contextmanager
def running_api(settings: Settings, port: int, store: ProjectionStore | None = None,
                start_timeout_s: float = 60.0) -> Iterator[str]:
    """The API (and, embedded, the projections) in threads of this process, on 127.0.0.1:port: tests, benchmarks."""
    own = store is None
    store = store or ProjectionStore.from_settings(settings)
    migrate(store)
    stop = threading.Event()
    with projections_alongside(settings, store, stop):
        srv = server(settings, store, "127.0.0.1", port)
        srv.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # not the main thread
        thread = threading.Thread(target=srv.run, name="api", daemon=True)
        thread.start()
        try:
            if not wait_until(lambda: srv.started or not thread.is_alive(), start_timeout_s) or not srv.started:
                startup_error = getattr(srv.config.app.state, "startup_error", None)
                if startup_error is not None:
                    raise startup_error
                raise RuntimeError(f"the API did not start on 127.0.0.1:{port} within {start_timeout_s:.0f}s")
            yield f"http://127.0.0.1:{port}"
        finally:
            srv.should_exit = True
            thread.join(30)
            if own:
                store.close()
