"""`cda inference serve`: the vLLM servers (one, or `CDA_VLLM_SERVERS`), the adapter lifecycle and the gateway,
supervised together.

A supervisor thread checks every `CDA_VLLM_WATCH_INTERVAL_S` that each vLLM server runs and that every active
adapter is listed by the server its company is routed to. If a server it manages died, its companies go to the
others at once (the gateway) and it starts it again; if a server (managed or `--external`) came back without
the adapters (a restarted vLLM forgets runtime adapters), it registers them again. Until they are back, and
whenever the lifecycle or the supervisor thread died, readiness is false. SIGTERM and SIGINT stop the gateway,
the workers and the vLLM children alike.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import urlparse

import uvicorn

from core.errors import is_transient
from core.settings import Settings
from core.signals import exit_on_signals
from core.workers import WorkerThread
from inference.backends import Backends
from inference.candidates import CandidateStage
from inference.errors import ServerSetupError
from inference.gateway import GatewayState, create_app
from inference.lifecycle import AdapterManager
from inference.routing import AdapterRouter
from inference.server import VllmServer
from topics.producer import EventProducer

log = logging.getLogger(__name__)


class InferenceService:
    def __init__(self, settings: Settings, *, manage_server: bool = True) -> None:
        self.settings = settings
        self.manage_server = manage_server
        urls = settings.vllm_backend_urls
        self.servers = [VllmServer(settings.model_copy(update={"vllm_url": url}), first=i == 0)
                        for i, url in enumerate(urls)]
        self.server = self.servers[0]
        self.backends = Backends.of(urls, settings.inference_timeout_s)
        self.router = AdapterRouter()
        self.producer = EventProducer(settings)
        self.manager = AdapterManager(settings, self.backends.first.api, self.router, self.producer, self.backends)
        self.state = GatewayState(self.router, self.backends.first.async_api, settings.served_base_name,
                                  self.backends, self.manager.ensure_on,
                                  CandidateStage(settings, self.backends.first.api))
        self.stop = threading.Event()
        self.resyncs = 0  # how often adapters were registered again after a server restart

    def start_backend(self) -> None:
        """Start vLLM (unless external), register the active adapters, start the lifecycle and supervisor."""
        if self.manage_server:
            for server in self.servers:
                server.start()
        elif not any(b.api.ready() for b in self.backends.all):
            raise ServerSetupError(f"no vLLM server answers on {', '.join(b.url for b in self.backends.all)}")
        restored = self.manager.restore()
        log.info("registered %d active adapter(s)", len(restored))
        self.state.restored = True
        self.state.workers = [
            WorkerThread("adapter-lifecycle", self.manager.run, self.stop).start(),
            WorkerThread("vllm-supervisor", self._supervise, self.stop).start(),
        ]

    def _supervise(self, stop: threading.Event) -> None:
        while not stop.wait(self.settings.vllm_watch_interval_s):
            try:
                self.check_backend()
            except Exception as exc:
                if not (is_transient(exc) or isinstance(exc, ServerSetupError)):
                    raise  # a bug: the thread dies and readiness says so
                self.state.restored = False
                log.warning("vLLM not back yet (%s); trying again", exc)

    def check_backend(self) -> None:
        """Start a managed server again if it died (its companies are served by the others meanwhile); register
        the adapters again where a server lost them."""
        for server, backend in zip(self.servers, self.backends.all, strict=True):
            if self.manage_server and not server.alive():
                log.error("vLLM on %s exited; starting it again", backend.url)
                self.backends.mark(backend, False)
                if len(self.servers) == 1:
                    self.state.restored = False
                server.start()
        if self.manager.missing():
            self.state.restored = False
            back = self.manager.resync()
            self.resyncs += 1
            log.warning("vLLM had lost %d adapter(s); registered them again", len(back))
        self.state.restored = True

    def serve(self) -> None:
        """Run the gateway in the foreground until SIGINT/SIGTERM, then stop everything, vLLM included."""
        with exit_on_signals():
            try:
                self.start_backend()
                url = urlparse(self.settings.inference_url)
                uvicorn.run(create_app(self.state), host=url.hostname or "127.0.0.1", port=url.port or 8020,
                            log_level="warning")
            finally:
                self.shutdown()

    def shutdown(self) -> None:
        """Stop the workers and the managed vLLM (first: a supervisor gives a stopping service few seconds)."""
        self.stop.set()
        if self.manage_server:
            for server in self.servers:
                server.stop()
        for worker in self.state.workers:
            worker.join(10)
        self.producer.flush()
