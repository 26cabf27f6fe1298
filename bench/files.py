"""Atomic file writes: readers never see a partial file; exclusive writes never replace one."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from bench.errors import BenchError


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


def read_json_object(path: Path, kind: str, error: type[Exception]) -> dict[str, Any]:
    """A JSON object from `path`, or `error` naming the file and saying what is wrong with it."""
    try:
        value = json.loads(path.read_text())
    except OSError as exc:
        raise error(f"{path}: cannot read {kind} ({exc.strerror})") from None
    except ValueError as exc:
        raise error(f"{path}: corrupt {kind}, not valid JSON ({exc}); restore it from version control") from None
    if not isinstance(value, dict):
        raise error(f"{path}: not a {kind} (top level is not an object)")
    return value


def ensure_writable_dir(path: Path, what: str) -> None:
    """Prove that `path` is, or can become, a folder that takes files — before any expensive work,
    and without creating anything: the nearest existing folder on the way must take a file."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise BenchError(f"{what} {path}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise BenchError(f"{what} {path} is not writable ({exc.strerror} in {existing})") from None


def ensure_writable_file(path: Path, what: str, *, overwrite: bool = True) -> None:
    """The folder of `path` takes a new file; an existing `path` only when it may be replaced."""
    if path.is_dir():
        raise BenchError(f"{what} {path} is a folder, not a file name")
    if path.exists() and not overwrite:
        raise BenchError(f"{what} {path} exists: pass --overwrite to replace it (its sidecar too)")
    ensure_writable_dir(path.parent, f"the folder of {what}")


def write_if_changed(path: Path, content: bytes) -> bool:
    """Leave an identical file untouched (timestamp too); replace a different one atomically."""
    if path.is_file() and path.read_bytes() == content:
        return False
    atomic_write(path, content)
    return True


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
