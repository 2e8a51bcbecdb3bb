"""`cda inference serve`: the vLLM server, the adapter lifecycle and the gateway, supervised together.

If vLLM dies it is started again and every company's active adapter is registered again before the
gateway reports ready.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import urlparse

import uvicorn

from cda.settings import Settings
from inference.errors import ServerSetupError
from inference.gateway import GatewayState, create_app
from inference.lifecycle import AdapterManager
from inference.routing import AdapterRouter
from inference.server import VllmServer
from inference.vllm_api import AsyncVllmApi, VllmApi
from topics.producer import EventProducer

log = logging.getLogger(__name__)


class InferenceService:
    def __init__(self, settings: Settings, *, manage_server: bool = True) -> None:
        self.settings = settings
        self.manage_server = manage_server
        self.server = VllmServer(settings)
        self.router = AdapterRouter()
        self.producer = EventProducer(settings)
        self.manager = AdapterManager(settings, VllmApi(settings.vllm_url, settings.inference_timeout_s), self.router,
                                      self.producer)
        self.state = GatewayState(self.router, AsyncVllmApi(settings.vllm_url, settings.inference_timeout_s),
                                  settings.served_base_name)
        self.stop = threading.Event()

    def start_backend(self) -> None:
        """Start vLLM (unless external), register the active adapters, start the lifecycle consumer."""
        if self.manage_server:
            self.server.start()
        elif not self.manager.api.ready():
            raise ServerSetupError(f"no vLLM server answers on {self.settings.vllm_url}")
        restored = self.manager.restore()
        log.info("registered %d active adapter(s)", len(restored))
        self.state.restored = True
        threading.Thread(target=self.manager.run, args=(self.stop,), name="adapter-lifecycle", daemon=True).start()
        if self.manage_server:
            threading.Thread(target=self._supervise, name="vllm-supervisor", daemon=True).start()

    def _supervise(self) -> None:
        while not self.stop.wait(2.0):
            if self.server.alive():
                continue
            log.error("vLLM exited; restarting it")
            self.state.restored = False
            try:
                self.server.start()
                self.manager.restore()
                self.state.restored = True
            except Exception:
                log.exception("restarting vLLM failed; trying again")

    def serve(self) -> None:
        """Run the gateway in the foreground until SIGINT/SIGTERM, then stop everything."""
        self.start_backend()
        url = urlparse(self.settings.inference_url)
        try:
            uvicorn.run(create_app(self.state), host=url.hostname or "127.0.0.1", port=url.port or 8020,
                        log_level="warning")
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        self.stop.set()
        if self.manage_server:
            self.server.stop()
        self.producer.flush()
