"""Examples too large for one record: a broker takes records up to its size limit (1 MB by default), and
thousands of examples exceed it. `cda train` then stores them as a content-addressed JSON-lines file under
`<home>/trainer/examples/<company>/<sha256>.jsonl` and the request carries only the hash (`examples_ref`).
The reference is an identifier, not a path: the worker resolves it under its own home, with `safe_join`,
and checks the hash, so an event can neither point outside that folder nor at changed contents.
The CLI and the worker must share the home folder (one machine, or one volume).

A file is held by each request that refers to it (`<sha256>.<request id>.hold`, an empty marker beside it):
when a request has ended, the worker releases its hold, and the file goes once no request holds it, so the
folder does not grow with every large request. Both happen under a lock on the company's folder, so a new
request holding the same contents cannot lose its file to another's release."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def _company_lock(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def store_examples(settings: Settings, company_id: str, examples: list[RawExample], request_id: str) -> str:
    """Write the examples once (by content), held by `request_id`, and return their reference."""
    body = encode_examples(examples)
    ref = hashlib.sha256(body).hexdigest()
    path = safe_join(examples_root(settings), company_id, f"{ref}.jsonl")
    hold = safe_join(examples_root(settings), company_id, f"{ref}.{request_id}.hold")
    with _company_lock(path.parent):
        hold.touch()
        _write(path, body, ref)
    return ref


def release_examples(settings: Settings, company_id: str, ref: str, request_id: str) -> bool:
    """`request_id` has ended: drop its hold, and the file once no request holds it (True when removed)."""
    try:
        path = safe_join(examples_root(settings), company_id, f"{ref}.jsonl")
        hold = safe_join(examples_root(settings), company_id, f"{ref}.{request_id}.hold")
    except UnsafePath:
        return False
    if not path.parent.exists():
        return False
    with _company_lock(path.parent):
        hold.unlink(missing_ok=True)
        if any(path.parent.glob(f"{ref}.*.hold")):
            return False
        removed = path.exists()
        path.unlink(missing_ok=True)
        return removed


def _write(path: Path, body: bytes, ref: str) -> None:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{ref}.{uuid.uuid4().hex}")
        with open(staging, "wb") as file:
            file.write(body)
            file.flush()
            os.fsync(file.fileno())
        os.replace(staging, path)
        fsync_path(path.parent)


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
