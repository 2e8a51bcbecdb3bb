"""An adapter folder as one archive whose sha256 names it: what travels between the trainer and inference when
they share no disk. Packing is deterministic (sorted names, no times, no owners), so the same files always give
the same hash; unpacking takes only regular files, inside the target, within a size bound."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from pathlib import Path

from core.errors import CdaError

SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_ARCHIVE_BYTES = 1 << 30  # 1 GiB: a rank-64 adapter of a 70B model is well under


class ArchiveError(CdaError):
    """An archive that cannot be an adapter: too large, a link, a path outside its folder, unreadable."""


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack(folder: Path) -> bytes:
    """The folder's regular files as a gzip'd tar, the same bytes for the same files."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT, compresslevel=6) as tar:
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
            info = tarfile.TarInfo(path.relative_to(folder).as_posix())
            info.size, info.mtime, info.mode = path.stat().st_size, 0, 0o644
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    data = buffer.getvalue()
    # gzip's own header carries a time: zero it, so equal files give equal bytes
    return data[:4] + b"\x00\x00\x00\x00" + data[8:]


def unpack(data: bytes, target: Path, max_bytes: int = MAX_ARCHIVE_BYTES) -> None:
    """Extract `data` into `target` (made here): regular files only, each inside `target`."""
    target.mkdir(parents=True, exist_ok=False)
    root = target.resolve()
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar:
                if not member.isfile():
                    raise ArchiveError(f"{member.name!r} is not a regular file")
                destination = (root / member.name).resolve()
                if member.name.startswith("/") or not destination.is_relative_to(root) or destination == root:
                    raise ArchiveError(f"{member.name!r} lies outside the adapter's folder")
                total += member.size
                if total > max_bytes:
                    raise ArchiveError(f"the archive unpacks to more than {max_bytes} bytes")
                source = tar.extractfile(member)
                if source is None:
                    raise ArchiveError(f"{member.name!r} cannot be read")
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.write_bytes(source.read())
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"not an adapter archive: {exc}") from exc
