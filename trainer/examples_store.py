"""Examples too large for one record: a broker takes records up to its size limit (1 MB by default), and
thousands of examples exceed it. `cda train` then stores them as a content-addressed JSON-lines file under
`<home>/trainer/examples/<company>/<sha256>.jsonl` and the request carries only the hash (`examples_ref`).
The reference is an identifier, not a path: the worker resolves it under its own home, with `safe_join`,
and checks the hash, so an event can neither point outside that folder nor at changed contents.
The CLI and the worker must share the home folder (one machine, or one volume)."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

from core.paths import UnsafePath, safe_join
from core.settings import Settings
from trainer.durable import fsync_path
from trainer.errors import BadRequest

RawExample = dict[str, str]  # task, payload_json, tool_name, arguments_json: the Avro TrainingExample


def examples_root(settings: Settings) -> Path:
    return settings.home / "trainer" / "examples"


def encode_examples(examples: list[RawExample]) -> bytes:
    return "".join(json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n" for e in examples).encode()


def store_examples(settings: Settings, company_id: str, examples: list[RawExample]) -> str:
    """Write the examples once (by content) and return their reference."""
    body = encode_examples(examples)
    ref = hashlib.sha256(body).hexdigest()
    path = safe_join(examples_root(settings), company_id, f"{ref}.jsonl")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{ref}.{uuid.uuid4().hex}")
        with open(staging, "wb") as file:
            file.write(body)
            file.flush()
            os.fsync(file.fileno())
        os.replace(staging, path)
        fsync_path(path.parent)
    return ref


def load_examples(settings: Settings, company_id: str, ref: str) -> list[RawExample]:
    """The examples a request refers to; `BadRequest` naming `examples_ref` when absent or altered."""
    try:
        path = safe_join(examples_root(settings), company_id, f"{ref}.jsonl")
    except UnsafePath as exc:
        raise BadRequest("examples_ref", str(exc)) from None
    if not path.exists():
        raise BadRequest("examples_ref", f"no examples file {path} on this trainer; `cda train` and the trainer "
                                         "must share CDA_HOME")
    body = path.read_bytes()
    if hashlib.sha256(body).hexdigest() != ref:
        raise BadRequest("examples_ref", f"{path} does not hash to its name: it was changed after the request")
    return [json.loads(line) for line in body.decode().splitlines() if line.strip()]
