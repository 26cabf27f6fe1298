"""Atomic file writes: readers never see a partial file; exclusive writes never replace one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write `data` to `path` through a synced temporary file in the same folder.

    With exclusive=True the file must not exist yet (FileExistsError otherwise), so two writers
    can never overwrite each other; without it an existing file is replaced in one step.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would make records unreadable to others
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            os.link(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_if_changed(path: Path, content: bytes) -> bool:
    """Leave an identical file untouched (timestamp too); replace a different one atomically."""
    if path.is_file() and path.read_bytes() == content:
        return False
    atomic_write(path, content)
    return True
