"""What a training request may ask for, each value within the trainer's bounds (a value out of bounds is
refused naming its field), and the lock that keeps one request on one worker.

One request, one worker: the work folder is held with an exclusive `flock` while the request is handled.
A run longer than `max.poll.interval.ms` drops the worker from its group and the request is handed to
another worker; that one finds the folder locked, commits nothing and asks again later (transient), and
once the first is done it finds the stored version and announces it rather than training a second time.
A lock (rather than polling the consumer during training) holds also across a rebalance, a second process
or a restart with the first still running; `flock` is per host (and per shared volume that supports it).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.settings import Settings
from topics.events import Event
from trainer.errors import BadRequest, RequestBusy
from trainer.train import TrainConfig


def bounded(data: Any, field: str, default: Any, low: Any, high: Any, what: str) -> Any:
    value = data.get(field)
    if value is None:
        return default
    if value < low:
        raise BadRequest(field, f"{field} {value} is below the smallest allowed {low}")
    if value > high:
        raise BadRequest(field, f"{field} {value} exceeds {what} {high}")
    return value


def config_from(request: Event, defaults: TrainConfig, settings: Settings) -> TrainConfig:
    """The training configuration a request asks for, each value within the trainer's bounds."""
    data = request.data
    return TrainConfig(
        rank=bounded(data, "rank", defaults.rank, 1, settings.vllm_max_lora_rank, "the server's maximum"),
        learning_rate=bounded(data, "learning_rate", defaults.learning_rate, settings.trainer_min_learning_rate,
                               settings.trainer_max_learning_rate, "the largest allowed (CDA_TRAINER_MAX_LEARNING_RATE)"),
        max_steps=bounded(data, "max_steps", defaults.max_steps, 1, settings.trainer_max_steps,
                           "the largest allowed (CDA_TRAINER_MAX_STEPS)"),
        batch_size=defaults.batch_size,
        method=str(data.get("method") or "LORA"),
        allow_fallback=bool(data.get("allow_fallback", True)),
        seed=defaults.seed,
        checkpoint_every=defaults.checkpoint_every,
    )


@contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold `lock_path` exclusively (flock) or raise `RequestBusy` at once; the file goes when released."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_ino != os.stat(lock_path).st_ino:  # released and removed meanwhile: not ours
                raise FileNotFoundError(lock_path)
        except (BlockingIOError, FileNotFoundError):
            raise RequestBusy(f"another worker is handling the request in {lock_path.with_suffix('')}") from None
        try:
            yield
        finally:
            lock_path.unlink(missing_ok=True)  # still held: nobody else can be inside
    finally:
        os.close(fd)
