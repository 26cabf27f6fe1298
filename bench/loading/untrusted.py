"""Reading files a user hands us without running code from them.

One rule for every loader (checkpoints, --weights, --init, transfer surrogates, RobustBench zoo
files, resume states, adversarial-example files, model files): a file is read by something that
cannot execute code, or it is refused unless the user passed `--trust-checkpoint`.

- Pickles (`torch.save` files): PyTorch's weights-only unpickler, which builds tensors and plain
  containers and refuses every other global. A file it refuses needs the full unpickler, i.e.
  arbitrary code: trusted files only.
- `torch.export` archives (.pt2): trusted only. `torch.export.load` and `.module()` run code from
  the archive by at least four routes — entries unpickled with the full unpickler, shape
  expressions evaluated by sympy (`eval`), call targets resolved by name, and the program's
  `guards_code` strings handed to `exec` when the module is built — and the format changes with
  each torch release. An inspection that listed what is dangerous missed the last route; one that
  admits only what is known good would have to re-implement the deserializer (see docs/safety.md).
- TorchScript: loading compiles and runs the archive's TorchScript code (its `__setstate__` too);
  the published weights-only bypass (CVE-2025-32434) went through exactly this path. Trusted only.
- Pickled modules: trusted only.
"""

from __future__ import annotations

import contextlib
import enum
import io
import os
import pickle
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from bench.errors import BenchError, first_line
from bench.files import open_regular

TRUST_FLAG = "--trust-checkpoint"
TRUST_HINT = (f"Pass {TRUST_FLAG} only if you trust where the file comes from (loading it can then run "
              "anything with your permissions), or save a plain state_dict and use "
              "--model package.module:factory --weights FILE")


class UntrustedFileError(BenchError):
    """A file that could run code when loaded, and the user did not say they trust it."""


class Sniffed(str, enum.Enum):
    """What the first bytes of a file say it is (for messages that name the real problem)."""

    EMPTY = "an empty file (0 bytes)"
    HTML = "an HTML page, not a PyTorch file (a download that returned a web page?)"
    ZIP = "a zip archive"
    PICKLE = "a pickle"
    TEXT = "a text file, not a PyTorch file"
    OTHER = "not a PyTorch file"


def sniff(path: Path) -> Sniffed:
    with open(path, "rb") as handle:
        head = handle.read(512)
    stripped = head.lstrip().lower()
    if not head:
        return Sniffed.EMPTY
    if stripped.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")):
        return Sniffed.HTML
    if head.startswith(b"PK\x03\x04"):
        return Sniffed.ZIP
    if head[:1] == b"\x80":  # the PROTO opcode every binary pickle (torch.save, pickle.dump) starts with
        return Sniffed.PICKLE
    try:
        head.decode("utf-8")
        return Sniffed.TEXT
    except UnicodeDecodeError:
        return Sniffed.OTHER


def readable_file(path: Path, what: str) -> None:
    """A one-line error for a path that is not a readable regular file."""
    if path.is_dir():
        raise BenchError(f"{what} {path} is a directory, not a file")
    if not path.exists():
        raise BenchError(f"{what} {path} does not exist")
    os.close(open_regular(path, what))


def refusal(path: Path, what: str, why: str, *, trustable: bool = True) -> UntrustedFileError:
    """`trustable`: a flag can allow the file (user models); otherwise it is never legitimate."""
    hint = TRUST_HINT if trustable else ("No flag loads it: files of this kind hold tensors only, so one "
                                         "that needs code was not written by this suite")
    return UntrustedFileError(f"{path}: {what}, so loading it could run code ({why}): refused. {hint}")


def _needs_code(exc: pickle.UnpicklingError, sniffed: Sniffed) -> bool:
    """The weights-only reader refused a global or an opcode of a real pickle (not garbage)."""
    text = str(exc)
    return "GLOBAL" in text or "Unsupported class" in text or (
        "Unsupported operand" in text and sniffed in (Sniffed.ZIP, Sniffed.PICKLE))


def _unreadable(what: str, label: str, sniffed: Sniffed, exc: BaseException) -> BenchError:
    return BenchError(f"{what} {label} cannot be read: it is {sniffed.value}, corrupt or truncated? "
                      f"({first_line(exc)})")


def load_tensors(source: Path | bytes, *, trust: bool, what: str = "file", name: str | None = None,
                 trustable: bool = True, mmap: bool = False) -> Any:
    """`torch.load` with the weights-only unpickler; a file that needs more only with trust.

    `source` is a path or the bytes of an archive entry (`name` then says where they came from);
    `trustable=False` for files the suite wrote itself (checkpoints, states), which never need code;
    `mmap=True` maps a zip file's tensors instead of reading them (a check whose result is dropped).
    Every failure is a BenchError naming the file and what it is instead.
    """
    if isinstance(source, Path):
        readable_file(source, what)
        label: str = str(source)
        sniffed = sniff(source)
        opened: Any = source
    else:
        label = name or what
        sniffed = Sniffed.ZIP if source.startswith(b"PK\x03\x04") else Sniffed.PICKLE
        opened = io.BytesIO(source)
    if sniffed in (Sniffed.EMPTY, Sniffed.HTML, Sniffed.TEXT):
        raise BenchError(f"{what} {label} is {sniffed.value}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # protocol notices: not the user's business
            return torch.load(opened, map_location="cpu", weights_only=True,
                              mmap=mmap and sniffed is Sniffed.ZIP and isinstance(source, Path))
    except pickle.UnpicklingError as exc:
        if not _needs_code(exc, sniffed):
            raise _unreadable(what, label, sniffed, exc) from None
        if not trust:
            raise refusal(Path(label), f"{what} needs the full unpickler ({first_line(exc)})",
                          "unpickling calls whatever the file names", trustable=trustable) from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, ValueError, zip errors … for damage
        raise _unreadable(what, label, sniffed, exc) from None
    if isinstance(opened, io.BytesIO):
        opened.seek(0)
    try:
        return torch.load(opened, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise BenchError(f"{what} {label} cannot be loaded even as a trusted pickle: {first_line(exc)}") from None


# --- no network ------------------------------------------------------------------------------

@contextlib.contextmanager
def no_network(what: str) -> Iterator[None]:
    """Fail any connection attempt inside the block with a one-line error: model constructors in
    zoo packages download weights when a file is missing, which this suite never does."""
    original = socket.socket.connect

    def refuse(self: socket.socket, address: Any) -> None:
        raise BenchError(f"{what} tried to open a network connection to {address!r}; this suite never "
                         "downloads: put the files it needs on disk first")

    socket.socket.connect = refuse  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        socket.socket.connect = original  # type: ignore[method-assign]
