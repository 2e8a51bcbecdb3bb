"""A schema registry for tests: the few endpoints cda uses, served over real HTTP on 127.0.0.1.

No Confluent server runs here, so this one stands in for it at the network boundary; `mode` stages its
failures ("ok", "error": answers 503, "hang": accepts and never answers), `stop()` takes it away.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeRegistry:
    """POST /subjects/<subject>/versions and GET /schemas/ids/<id>, with ids shared across subjects."""

    def __init__(self) -> None:
        self.schemas: list[str] = []
        self.subjects: dict[str, int] = {}
        self.requests = 0
        self.mode = "ok"
        self.release = threading.Event()
        self.server: ThreadingHTTPServer | None = None
        self._port = 0

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self, port: int = 0) -> None:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def staged(self) -> bool:
                registry.requests += 1
                if registry.mode == "hang":
                    registry.release.wait(30)
                    return True
                if registry.mode == "error":
                    self.answer(503, {"error_code": 50301, "message": "backend down"})
                    return True
                return False

            def do_POST(self) -> None:  # /subjects/<subject>/versions
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.staged():
                    return
                parts = self.path.split("?")[0].split("/")
                if len(parts) != 4 or parts[1] != "subjects" or parts[3] != "versions":
                    self.answer(404, {"error_code": 404, "message": "no such endpoint"})
                    return
                if body["schema"] not in registry.schemas:
                    registry.schemas.append(body["schema"])
                schema_id = registry.schemas.index(body["schema"]) + 1
                registry.subjects[parts[2]] = schema_id
                self.answer(200, {"id": schema_id})

            def do_GET(self) -> None:  # /schemas/ids/<id>
                if self.staged():
                    return
                parts = self.path.split("?")[0].split("/")
                if len(parts) != 4 or parts[1:3] != ["schemas", "ids"]:
                    self.answer(404, {"error_code": 404, "message": "no such endpoint"})
                    return
                schema_id = int(parts[3])
                if not 1 <= schema_id <= len(registry.schemas):
                    self.answer(404, {"error_code": 40403, "message": f"Schema {schema_id} not found"})
                    return
                self.answer(200, {"schema": registry.schemas[schema_id - 1]})

        self.release.clear()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._port = self.port
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Take the registry away (connections are refused); `start(port)` brings it back with its schemas."""
        if self.server is None:
            return
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.server = None


@contextmanager
def fake_registry() -> Iterator[FakeRegistry]:
    registry = FakeRegistry()
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()
