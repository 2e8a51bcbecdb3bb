"""What BENCH R6 tries its attacks against: `cda api serve` in its own process on scratch topics, a loopback listener
that must never be reached, and how each try ends (refused, leaked, hung)."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import free_port, stop_child
from core.health import answers_ok
from core.settings import Settings, settings_env
from core.workers import wait_until

OPERATOR = "op-" + uuid.uuid4().hex + uuid.uuid4().hex[:8]
SECRET = "s3cr3t-" + uuid.uuid4().hex


@dataclass
class Outcome:
    refused: bool
    leaked: bool = False
    detail: str = ""


@dataclass
class Tried:
    name: str
    outcome: Outcome
    seconds: float
    bound_s: float

    @property
    def hung(self) -> bool:
        return self.seconds > self.bound_s


class Listener:
    """A loopback HTTP server that records every request it gets (what must never be reached) and echoes."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, dict[str, str]]] = []
        hits = self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                hits.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                body = b'{"type": "object"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def secret_seen(self) -> bool:
        return any(SECRET in " ".join(headers.values()) for _, headers in self.hits)


class Stack:
    """`cda api serve` on scratch topics, with the operator's key, two places per key for held requests."""

    def __init__(self, settings: Settings, home: Path) -> None:
        self.settings = settings.model_copy(update={"home": home, "api_port": free_port(), "clickhouse_url": None,
                                                    "api_key_holds": 2, "api_rate_per_s": 10_000.0,
                                                    "api_rate_burst": 10_000})
        env = settings_env(self.settings)
        env["CDA_API_OPERATOR_KEY"] = OPERATOR
        self.url = f"http://127.0.0.1:{self.settings.api_port}"
        self.log = (home / "api.log").open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "cda.cli.main", "api", "serve"], env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        if not wait_until(lambda: answers_ok(f"{self.url}/health/ready"), 120, 0.2):
            self.stop()
            raise SystemExit("the API did not start:\n" + (home / "api.log").read_text()[-3000:])
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def company(self, name: str) -> str:
        answer = self.http.post("/admin/companies", json={"company_id": name}, headers=auth(OPERATOR))
        answer.raise_for_status()
        return str(answer.json()["api_key"])

    def responsive(self) -> bool:
        """Whether the API answers someone else at once (an attack must not freeze it for every company)."""
        started = time.monotonic()
        try:
            ok = httpx.get(f"{self.url}/health/live", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
        return ok and time.monotonic() - started < 2

    def stop(self) -> None:
        stop_child(self.process)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def tool_body(name: str, parameters: dict[str, Any], url: str = "https://billing.example:443/post") -> dict[str, Any]:
    return {"name": name, "description": "d", "method": "POST", "url": url, "parameters": parameters}


# -- 1, 2: schemas and imports ----------------------------------------------------------------------------------
