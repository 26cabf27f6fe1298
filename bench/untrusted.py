"""Reading files a user hands us without running code from them.

One rule for every loader (checkpoints, --weights, --init, transfer surrogates, RobustBench zoo
files, resume states, adversarial-example files, model files): a file is read by something that
cannot execute code, or it is refused unless the user passed `--trust-checkpoint`.

- Pickles (`torch.save` files): PyTorch's weights-only unpickler, which builds tensors and plain
  containers and refuses every other global. A file it refuses needs the full unpickler, i.e.
  arbitrary code: trusted files only.
- `torch.export` archives (.pt2): `torch.export.load` unpickles some entries with the full
  unpickler, evaluates shape expressions with sympy (`eval`), and calls graph targets it resolves
  by name under `torch`, `math` and `operator`. So the archive is inspected first (`check_export`):
  every pickled entry must pass the weights-only unpickler, every shape expression must be plain
  arithmetic over symbols, every call target an operator; anything else needs trust.
- TorchScript: loading compiles and runs the archive's TorchScript code (its `__setstate__` too);
  the published weights-only bypass (CVE-2025-32434) went through exactly this path. Trusted only.
- Pickled modules: trusted only.
"""

from __future__ import annotations

import contextlib
import enum
import io
import json
import pickle
import re
import socket
import tokenize
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from bench.errors import BenchError, first_line

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
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise BenchError(f"{what} {path} cannot be read ({exc.strerror})") from None


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


# --- torch.export archives -------------------------------------------------------------------

# Shape expressions are sympy `srepr` text: Symbol('s0', positive=True, integer=True), FloorDiv(…)…
_SYMBOL_NAME = re.compile(r"^'[a-z]+\d+'$")
_EXPR_NAMES = frozenset({
    "Symbol", "Integer", "Rational", "Float", "Add", "Mul", "Pow", "Max", "Min", "Abs", "Eq", "Ne", "Lt",
    "Le", "Gt", "Ge", "And", "Or", "Not", "true", "false", "True", "False", "None", "oo", "floor", "ceiling",
    "positive", "negative", "nonnegative", "nonpositive", "integer", "real", "finite", "zero", "nonzero",
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "Mod", "CleanDiv", "CeilToInt", "FloorToInt",
    "CeilDiv", "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv",
    "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal",
    "ToFloat", "Identity", "OpaqueUnaryFn_sqrt", "BitwiseFn_bitwise_and", "BitwiseFn_bitwise_or"})
_EXPR_OPS = frozenset({"(", ")", ",", "=", "+", "-", "*", "/", "//", "%", "**", "<", ">", "<=", ">=", "==",
                       "!=", "&", "|", "~"})
# Graph call targets: operators only. `operator` is limited to arithmetic, comparison and indexing
# (attrgetter / methodcaller / call would reach any Python object).
_OPERATOR_NAMES = frozenset({
    "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg", "pos", "abs", "eq", "ne", "lt", "le",
    "gt", "ge", "and_", "or_", "xor", "not_", "invert", "lshift", "rshift", "getitem", "matmul", "truth"})
_TARGET = re.compile(r"^(torch\.ops\.[A-Za-z_]\w*\.[A-Za-z_]\w*(\.[A-Za-z_]\w*)?"
                     r"|torch\.sym_[a-z_]+|torch\._sym_sqrt|math\.[a-z][a-z0-9_]*|_operator\.([a-z_]+))$")


def safe_expression(text: str) -> bool:
    """Plain arithmetic over shape symbols, nothing sympy's `eval` could turn into a call of ours."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return False
    for token in tokens:
        if token.type in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER):
            continue
        if token.type == tokenize.NUMBER:
            continue
        if token.type == tokenize.NAME and token.string in _EXPR_NAMES:
            continue
        if token.type == tokenize.NAME and re.fullmatch(r"[a-z]+\d+", token.string):
            continue
        if token.type == tokenize.STRING and _SYMBOL_NAME.match(token.string):
            continue
        if token.type == tokenize.OP and token.string in _EXPR_OPS:
            continue
        return False
    return True


def safe_target(text: str) -> bool:
    match = _TARGET.match(text)
    if match is None or "__" in text:
        return False
    operator_name = match.group(3)
    return operator_name is None or operator_name in _OPERATOR_NAMES


def _strings_under(value: Any, keys: frozenset[str]) -> Iterator[tuple[str, str]]:
    """Every (key, string) pair in a JSON tree whose key is in `keys`; dict keys of
    `range_constraints` are shape expressions too."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in keys and isinstance(item, str):
                yield key, item
            if key == "range_constraints" and isinstance(item, dict):
                yield from (("expr_str", k) for k in item)
            yield from _strings_under(item, keys)
    elif isinstance(value, list):
        for item in value:
            yield from _strings_under(item, keys)


def _json_member(archive: zipfile.ZipFile, name: str, path: Path) -> Any:
    try:
        return json.loads(archive.read(name))
    except (ValueError, UnicodeDecodeError):
        raise BenchError(f"{path}: archive entry {name} is not valid JSON (corrupt archive?)") from None


def check_export(path: Path) -> None:
    """Refuse (UntrustedFileError) a torch.export archive that `torch.export.load` could not read
    without running code from it; BenchError for a damaged archive."""
    try:
        archive = zipfile.ZipFile(path)
        names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise BenchError(f"{path} is not a readable torch.export archive: {exc}") from None
    with archive:
        formats = [n for n in names if n.endswith("/archive_format")]
        if not formats:
            raise refusal(path, "an old-format torch.export archive (no archive_format entry)",
                          "its state is read with the full unpickler")
        root = formats[0][: -len("archive_format")]
        for name in names:
            relative = name[len(root):] if name.startswith(root) else name
            if relative.startswith("models/") and relative.endswith(".json"):
                program = _json_member(archive, name, path)
                for key, text in _strings_under(program, frozenset({"target", "expr_str"})):
                    ok = safe_target(text) if key == "target" else safe_expression(text)
                    if not ok:
                        what = "calls" if key == "target" else "has the shape expression"
                        raise refusal(path, f"its program {what} {text[:80]!r}",
                                      "torch.export resolves call targets by name and evaluates shape "
                                      "expressions with sympy's eval")
            elif relative.endswith("_config.json") and relative.startswith("data/"):
                _check_payloads(archive, root, relative, _json_member(archive, name, path), path)
            elif relative.startswith("data/sample_inputs/") or (
                    relative.startswith(("data/weights/", "data/constants/")) and relative.endswith(".pt")):
                _check_pickled(archive.read(name), path, name)  # sample inputs; legacy weight files


def _check_payloads(archive: zipfile.ZipFile, root: str, config_name: str, config: Any, path: Path) -> None:
    folder = config_name.rsplit("/", 1)[0]
    entries = config.get("config", {}) if isinstance(config, dict) else {}
    if not isinstance(entries, dict):
        raise BenchError(f"{path}: {config_name} is not a payload config (corrupt archive?)")
    for fqn, meta in entries.items():
        if not isinstance(meta, dict) or not isinstance(meta.get("path_name"), str):
            raise BenchError(f"{path}: {config_name} entry {fqn!r} is malformed (corrupt archive?)")
        file_name = meta["path_name"]
        if file_name.startswith(("custom_obj", "opaque_obj")):
            raise refusal(path, f"it holds the object {fqn!r} serialized as {file_name}",
                          "such objects are unpickled with the full unpickler")
        if meta.get("use_pickle"):
            member = f"{root}{folder}/{file_name}"
            try:
                blob = archive.read(member)
            except KeyError:
                raise BenchError(f"{path}: entry {member} is missing (corrupt archive?)") from None
            _check_pickled(blob, path, member)


def _check_pickled(blob: bytes, path: Path, member: str) -> None:
    """An archive entry that torch.export would unpickle: it must pass the weights-only reader."""
    try:
        load_tensors(blob, trust=False, what="archive entry", name=f"{path}!{member}")
    except UntrustedFileError:
        raise refusal(path, f"its entry {member} needs the full unpickler",
                      "torch.export.load unpickles it with weights_only=False") from None


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
