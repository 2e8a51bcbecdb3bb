"""Paths built from event data: every part must be an identifier and the result must stay under its root,
so no company, request or version id can point outside the folder it belongs to."""

from __future__ import annotations

from pathlib import Path

from core.errors import CdaError
from core.identifiers import is_identifier


class UnsafePath(CdaError):
    """A path built from event data would leave the folder it must stay in."""


def safe_join(root: Path, *parts: str) -> Path:
    """`root/part/...`, or `UnsafePath` when a part is no identifier or the result leaves `root`."""
    for part in parts:
        if not is_identifier(part):
            raise UnsafePath(f"{part!r} may not be used in a path under {root}")
    base = root.resolve()
    path = base.joinpath(*parts).resolve()
    if path != base and base not in path.parents:
        raise UnsafePath(f"{path} lies outside {base}")
    return path


def is_within(path: Path, root: Path) -> bool:
    """Whether `path` (resolved, symlinks followed) lies inside `root`."""
    base, target = root.resolve(), path.resolve()
    return target == base or base in target.parents
