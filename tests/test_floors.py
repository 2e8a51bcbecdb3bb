"""The floor plan holds: `lint-imports` keeps the layers contract of `pyproject.toml` (no import runs up a
floor; serving code never imports training code), and the prompt contract lives on the ground floor, once."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def lint_imports(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    return subprocess.run([exe, "--no-cache", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_every_floor_stands_on_the_ones_below() -> None:
    done = lint_imports()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout, done.stdout


def test_an_import_up_a_floor_breaks_the_contract(tmp_path: Path) -> None:
    """The contract is no formality: a copy of the tree where the inference server imports the trainer fails."""
    for name in ("pyproject.toml", "core", "topics", "context", "projections", "inference", "trainer", "streams", "api",
                 "examples", "cda"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / name)
    with (tmp_path / "inference" / "routing.py").open("a") as f:
        f.write("\nimport trainer.registry  # noqa: E402,F401\n")
    done = lint_imports(cwd=tmp_path)
    assert done.returncode != 0 and "inference is not allowed to import trainer" in done.stdout, done.stdout


def test_the_prompt_contract_is_on_the_ground_floor_once() -> None:
    from core import prompts as contract

    for name in ("ToolSpec", "PromptContext", "render", "render_prompt", "render_target", "call_schema", "parse_call"):
        assert hasattr(contract, name), name
    for package in ("trainer", "streams", "inference", "context", "api"):
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text()
            assert "def render_prompt" not in source and "class ToolSpec" not in source, path
    assert not (ROOT / "inference" / "tiny_model.py").exists()
    assert (ROOT / "trainer" / "tiny_model.py").exists()


ROOTS = {"trainer": "trainer.errors.TrainerError", "streams": "streams.errors.StreamsError",
         "inference": "inference.errors.InferenceError", "projections": "projections.errors.ProjectionError",
         "topics": "topics.errors.TopicsError", "api": "core.errors.CdaError", "examples": "core.errors.CdaError",
         "context": "core.errors.CdaError", "cda": "core.errors.CdaError", "core": "core.errors.CdaError"}
PRIVATE = {"topics.avro_codec.Unsupported", "topics.avro_codec.TrailingBytes"}  # caught where raised, never leave the codec


def test_every_error_derives_from_its_package_root() -> None:
    """A caller can catch a package's failures by its root, and every failure by `CdaError`."""
    import ast
    import importlib

    wrong = []
    for package, root_path in ROOTS.items():
        module_name, _, class_name = root_path.rpartition(".")
        root = getattr(importlib.import_module(module_name), class_name)
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text())
            classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
            if not classes:
                continue
            dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            module = importlib.import_module(dotted)
            for name in classes:
                cls = getattr(module, name)
                if isinstance(cls, type) and issubclass(cls, BaseException) and f"{dotted}.{name}" not in PRIVATE \
                        and not issubclass(cls, root):
                    wrong.append(f"{dotted}.{name} is no {root.__name__}")
    assert wrong == []
