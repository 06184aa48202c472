"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every writer in mmfedrec (reports, caches, splits, features, images, checkpoints) goes through
`atomic_path`: write to a temporary file in the same folder, then rename it over the target.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `path`; when the block succeeds it replaces `path`.

    The temporary name keeps `path`'s suffix, so writers that pick a format from it (Pillow,
    matplotlib) still work. `durable` fsyncs the file and its folder before returning, for
    state that must survive a power cut (checkpoints); caches can be rebuilt and skip it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would make outputs private to this user
        if durable:
            with open(temporary, "rb") as file:
                os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if durable:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # make the rename itself durable
        finally:
            os.close(folder)


def write_atomic(path: Path, data: str | bytes, durable: bool = False) -> None:
    """Write `data` (text as UTF-8) to `path` atomically."""
    with atomic_path(path, durable) as temporary:
        temporary.write_bytes(data.encode() if isinstance(data, str) else data)
