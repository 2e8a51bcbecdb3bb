"""The trainer's fixtures: its topics, without vLLM (the worker's refusals never reach the gate) or with the
session's real vLLM and tiny base (training, the gate, serving); `cda` on the former."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from core.settings import Settings
from tests.helpers import free_port
from tests.trainer.support import TOPICS

Catalog = Callable[..., Settings]


@pytest.fixture
def trainer_settings(catalog: Catalog) -> Settings:
    """The test's topics; a vLLM address where nothing listens (these tests never reach the evaluation)."""
    return catalog(*TOPICS).model_copy(update={"vllm_url": f"http://127.0.0.1:{free_port()}"})


@pytest.fixture
def served_settings(catalog: Catalog, vllm_url: str, tiny_model: str, tmp_path: Path) -> Settings:
    """The test's topics, the session's vLLM server and the tiny base model."""
    return catalog(*TOPICS).model_copy(update={"vllm_url": vllm_url, "base_model": tiny_model, "home": tmp_path / "home"})


@pytest.fixture
def cli(trainer_settings: Settings, cli_for: Callable[[Settings], Callable[..., object]]) -> Callable[..., object]:
    return cli_for(trainer_settings)
