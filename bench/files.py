"""Atomic file writes: readers never see a partial file; exclusive writes never replace one."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

from bench.errors import BenchError, first_line

LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,79}")  # what a model's name may be: it becomes part of file names


def checked_label(text: str, what: str = "--label") -> str:
    """A model's name as records, result files and baselines use it: admitted only from the allow-list
    (letters, digits, `. _ + -`, not starting with a dot or dash, at most 80), so it can never
    name another folder."""
    if not LABEL.fullmatch(text):
        raise BenchError(f"{what} {text[:80]!r}: use letters, digits and . _ + - (start with a letter or digit; "
                         "at most 80)")
    return text


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


MAX_JSON_BYTES = 64 << 20  # a 10 000-point record with every margin is ≈ 1 MB
MAX_JSON_DEPTH = 32  # the deepest file this suite writes nests 6 levels
MAX_JSON_DIGITS = 18  # every whole number a file of ours holds is below 10^18 (< 2^63)


def open_regular(path: Path, what: str) -> int:
    """A read-only descriptor of `path` if it is a regular file. Opened without blocking and checked
    with fstat before any read, so a FIFO, a device (`/dev/zero`) or a socket is refused at once
    instead of hanging or streaming forever; the caller closes it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise BenchError(f"{what} {path} cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BenchError(f"{what} {path} is not a regular file (a folder, FIFO, device or socket): refused")
    os.set_blocking(fd, True)
    return fd


def read_capped(path: Path, what: str, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, checked before and while reading."""
    fd = open_regular(path, what)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise BenchError(f"{what} {path} is larger than {limit >> 20} MiB: refused (not a file this suite wrote)")
    return data


class _Unbounded(ValueError):
    """A JSON number or nesting beyond the limits above."""


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_DIGITS:
        raise _Unbounded(f"a whole number of {len(text)} digits (at most {MAX_JSON_DIGITS})")
    return int(text)


def _check_depth(value: Any) -> None:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise _Unbounded(f"nested deeper than {MAX_JSON_DEPTH} levels")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)


def parse_json(data: bytes | str, label: str, kind: str, error: type[Exception]) -> Any:
    """JSON from a file handed to us, within the limits of what this suite writes (size is the
    reader's job: `read_capped`); `error` names `label` and what is wrong."""
    try:
        value = json.loads(data, parse_int=_bounded_int)
        _check_depth(value)
    except _Unbounded as exc:
        raise error(f"{label}: not a {kind} this suite wrote ({exc})") from None
    except RecursionError:
        raise error(f"{label}: not a {kind} this suite wrote (nested deeper than {MAX_JSON_DEPTH} levels)") from None
    except ValueError as exc:
        raise error(f"{label}: corrupt {kind}, not valid JSON ({first_line(exc)})") from None
    return value


def read_json_object(path: Path, kind: str, error: type[Exception]) -> dict[str, Any]:
    """A JSON object from `path`, or `error` naming the file and saying what is wrong with it."""
    try:
        data = read_capped(path, kind, MAX_JSON_BYTES)
    except BenchError as exc:
        raise error(str(exc)) from None
    value = parse_json(data, str(path), kind, error)
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
    with os.fdopen(open_regular(path, "file"), "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
