"""The seams between packages: serving code never imports training code, and the prompt contract lives in a
neutral module that the trainer, the evaluation and the agents share."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (lazy imports inside functions count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_inference_never_imports_the_trainer() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path) if m == "trainer" or m.startswith("trainer."))
        for path in sorted((ROOT / "inference").rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_prompt_contract_is_neutral() -> None:
    prompts = ROOT / "cda" / "prompts.py"
    assert not {m for m in imported_modules(prompts) if m.split(".")[0] in ("trainer", "inference", "streams")}
    from cda import prompts as contract

    for name in ("ToolSpec", "render_prompt", "render_target", "call_schema", "parse_call"):
        assert hasattr(contract, name), name
    for path in sorted((ROOT / "trainer").glob("*.py")):
        source = path.read_text()
        assert "def render_prompt" not in source and "class ToolSpec" not in source, path
    assert not (ROOT / "inference" / "tiny_model.py").exists()
    assert (ROOT / "trainer" / "tiny_model.py").exists()
