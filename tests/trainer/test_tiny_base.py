"""The tiny base ships in the repository (trainer/base/tiny): its files are what its manifest says, a build
copies it instead of pretraining, and the recipe still reproduces its start and first steps exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer.tiny_model import MANIFEST, MARKER, SHIPPED, build, recipe, sha256_of, shipped_manifest


def test_the_shipped_base_is_what_its_manifest_says() -> None:
    manifest = shipped_manifest()
    assert manifest is not None, f"no {MANIFEST} in {SHIPPED}"
    assert manifest["recipe"] == recipe()
    files = manifest["files"]
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(files)
    for name, digest in files.items():
        assert sha256_of(SHIPPED / name) == digest, name


def test_a_build_copies_the_shipped_base(tmp_path: Path) -> None:
    target = build(tmp_path / "tiny")
    manifest = shipped_manifest()
    assert manifest is not None
    for name, digest in manifest["files"].items():
        assert sha256_of(target / name) == digest
    assert json.loads((target / MARKER).read_text()) == recipe()


def test_the_recipe_still_reproduces_the_first_steps() -> None:
    pytest.importorskip("torch")
    from trainer.tiny_model import first_losses

    manifest = shipped_manifest()
    assert manifest is not None
    init, losses = first_losses(steps=2)  # a step of the recipe's batch takes seconds on a CPU
    assert init == manifest["init_sha256"]  # same tokenizer, same seeded weights
    assert losses == pytest.approx(manifest["first_losses"][:2], abs=1e-5)  # same data, order and schedule
