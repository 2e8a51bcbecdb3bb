"""Folders made visible by a rename must be on disk before the rename: a crash (power loss, a killed VM)
right after `os.rename` could otherwise leave a visible checkpoint or version with empty or missing files,
because the rename may reach the disk before the data does."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_path(path: Path) -> None:
    """Flush one file's or folder's data and metadata to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Flush every file and folder under `root` (and `root` itself), deepest first."""
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            fsync_path(Path(folder, name))
        fsync_path(Path(folder))


def rename_durably(staging: Path, final: Path) -> None:
    """Flush `staging` whole, rename it to `final`, then flush the parent so the new name itself survives."""
    fsync_tree(staging)
    os.rename(staging, final)
    fsync_path(final.parent)
