"""Fixtures of the inference tests: servable and broken adapters for the tiny base, built once a session."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def adapters(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Servable adapters (seeded, distinct) and broken ones, built once."""
    from inference.random_adapter import make_adapter, retarget

    root = tmp_path_factory.mktemp("adapters")
    built = {name: make_adapter(tiny_model, root / name, seed=i) for i, name in enumerate(("a", "b", "c"))}
    built["big"] = make_adapter(tiny_model, root / "big", seed=9, rank=32)
    other = make_adapter(tiny_model, root / "other", seed=10)
    retarget(other, "/models/some-other-base")
    built["other"] = other
    missing = root / "missing"
    missing.mkdir()
    built["missing"] = missing
    corrupt = root / "corrupt"
    shutil.copytree(built["a"], corrupt)
    weights = corrupt / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: len(weights.read_bytes()) // 2])
    built["corrupt"] = corrupt
    bad_config = root / "bad-config"
    shutil.copytree(built["a"], bad_config)
    retarget(bad_config, tiny_model)
    config = json.loads((bad_config / "adapter_config.json").read_text())
    (bad_config / "adapter_config.json").write_text(json.dumps({**config, "r": "eight"}))
    built["bad-config"] = bad_config
    return built
