"""`--model SPEC`: models that did not come out of `bench train`.

    robustbench:NAME          a RobustBench zoo model already on disk (robustbench's own layout
                              under --model-dir; nothing is downloaded)
    package.module:factory    the user's nn.Module, built by `factory()`; weights from --weights FILE
    PATH                      a TorchScript file, a torch.export program (.pt2) or a pickled
                              nn.Module (only with --trust-checkpoint: loading each runs code)

Files are read with `weights_only=True`; anything that needs arbitrary code to unpickle is
refused unless the user says they trust it. What the model expects as input (range and
normalization) is declared by flags or by a JSON sidecar next to the file, never guessed.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import importlib
import math
import os
import re
import sys
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.errors import BenchError, did_you_mean, first_line
from bench.files import read_json_object, sha256_file
from bench.loading.untrusted import load_tensors, readable_file, refusal

FACTORY_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
ROBUSTBENCH_PREFIX = "robustbench:"
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net")
MODEL_FILE_SUFFIXES = (".pt", ".pt2", ".pth", ".ts", ".jit", ".pkl", ".bin", ".ckpt")


class InputRange(str, enum.Enum):
    """The pixel range the model was trained on; the suite always attacks [0, 1] pixels."""

    UNIT = "0-1"
    BYTE = "0-255"

    @property
    def scale(self) -> float:
        return 255.0 if self is InputRange.BYTE else 1.0


class SourceKind(str, enum.Enum):
    ROBUSTBENCH = "robustbench"
    FACTORY = "factory"
    TORCHSCRIPT = "torchscript"
    EXPORT = "torch.export"
    PICKLE = "pickled-module"


@dataclass(frozen=True)
class Preprocessing:
    """x_model = (x · scale − mean) / std, with mean and std in the model's own input units."""

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    input_range: InputRange = InputRange.UNIT

    def __post_init__(self) -> None:
        if (self.mean is None) != (self.std is None):
            raise BenchError("declare both --mean and --std, or neither")
        if self.mean is not None and self.std is not None:
            if len(self.mean) != len(self.std):
                raise BenchError(f"--mean has {len(self.mean)} values but --std has {len(self.std)}")
            if any(s <= 0 for s in self.std):
                raise BenchError("every --std value must be positive")

    def pixel_normalization(self) -> tuple[list[float], list[float]] | None:
        """(mean, std) on [0, 1] pixels for `ModelUnderTest`, or None when the model takes pixels."""
        scale = self.input_range.scale
        if self.mean is None or self.std is None:
            return None if scale == 1.0 else ([0.0], [1.0 / scale])
        return [m / scale for m in self.mean], [s / scale for s in self.std]

    def describe(self) -> str:
        norm = "none declared" if self.mean is None else f"mean {list(self.mean)}, std {list(self.std or ())}"
        return f"pixels in {self.input_range.value} for the model, normalization {norm} (applied inside the wrapper)"


@dataclass(frozen=True)
class ModelSpec:
    """What the user typed: the spec and the flags that qualify it (None = not given)."""

    text: str
    weights: Path | None = None
    trust: bool = False
    model_dir: Path = Path(os.environ.get("ROBUSTBENCH_MODEL_DIR", "models"))
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    input_range: InputRange | None = None

    def __post_init__(self) -> None:
        kind = self.kind()
        if self.weights is not None and kind is not SourceKind.FACTORY:
            raise BenchError("--weights goes with --model package.module:factory (a file model holds its weights)")

    def kind(self) -> SourceKind:
        if self.text.startswith(ROBUSTBENCH_PREFIX):
            return SourceKind.ROBUSTBENCH
        path = Path(self.text)
        if path.is_file():
            readable_file(path, "--model")
            return file_kind(path)
        if path.exists() or "/" in self.text or path.suffix in MODEL_FILE_SUFFIXES:
            readable_file(path, "--model")  # a directory, or a file that is not there
        if FACTORY_SPEC.match(self.text):
            return SourceKind.FACTORY
        raise BenchError(f"--model {self.text!r} is neither a file nor robustbench:NAME nor package.module:factory")


@dataclass(frozen=True)
class LoadedModel:
    module: nn.Module
    kind: SourceKind
    label: str
    path: Path  # the file whose bytes the sha256 covers
    sha256: str
    preprocessing: Preprocessing
    meta: dict[str, Any] = field(default_factory=dict)


def spec_with_options(text: str, options: Mapping[str, Any]) -> ModelSpec:
    """A user-model spec with the model flags as typed values under their option names (weights,
    trust_checkpoint, mean, std, input_range, model_dir; missing or None: not given)."""
    extra = {"model_dir": Path(options["model_dir"])} if options.get("model_dir") is not None else {}
    return ModelSpec(text, weights=Path(options["weights"]) if options.get("weights") is not None else None,
                     trust=bool(options.get("trust_checkpoint")),
                     mean=tuple(options["mean"]) if options.get("mean") is not None else None,
                     std=tuple(options["std"]) if options.get("std") is not None else None,
                     input_range=InputRange(options["input_range"]) if options.get("input_range") else None,
                     **extra)


def parse_floats(text: str | None, flag: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise BenchError(f"{flag} takes comma-separated numbers, e.g. 0.4914,0.4822,0.4465; got {text!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise BenchError(f"{flag} takes comma-separated finite numbers, e.g. 0.4914,0.4822,0.4465; got {text!r}")
    return values


def file_kind(path: Path) -> SourceKind:
    """TorchScript and torch.export archives are recognised by their members; anything else is a pickle."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(n.endswith("/archive_format") for n in names):
            return SourceKind.EXPORT
        if any("/code/" in n for n in names):
            return SourceKind.TORCHSCRIPT
    return SourceKind.PICKLE


def check_sha256(path: Path, expected: str | None) -> str:
    actual = sha256_file(path)
    if expected is not None and actual != expected.lower():
        raise BenchError(f"{path} has sha256 {actual[:16]}… but --sha256 expects {expected[:16]}…: "
                         "the file is corrupt, truncated or not the one you meant")
    return actual


def state_dict_of(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """A state_dict from what a weights file holds: the dict itself, a wrapping dict, or a module."""
    if isinstance(obj, nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
        for key in STATE_DICT_KEYS:
            if key in obj:
                return state_dict_of(obj[key], path)
        raise BenchError(f"{path} holds a dict without tensors at the top or under any of "
                         f"{', '.join(STATE_DICT_KEYS)} (keys: {', '.join(map(str, list(obj)[:8]))})")
    raise BenchError(f"{path} holds a {type(obj).__name__}, not a state_dict")


def state_dict_sha256(module: nn.Module) -> str:
    """A fingerprint for a factory whose weights come from the code itself (no --weights)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@contextlib.contextmanager
def _cwd_importable() -> Iterator[None]:
    """`python -m` puts the working directory on sys.path; the `bench` script does not."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added:
            sys.path.remove(cwd)


def import_factory(text: str, flag: str = "--model") -> Callable[[], Any]:
    module_name, _, attr = text.partition(":")
    with _cwd_importable():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise BenchError(f"cannot import {module_name!r} for {flag} {text}: no module {exc.name!r} "
                             "(run from the folder that holds it, or install its package)") from None
        except Exception as exc:  # the user's module fails on import (syntax error, its own exception)
            raise BenchError(f"importing {module_name!r} for {flag} {text} failed: "
                             f"{type(exc).__name__}: {first_line(exc)}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_") and callable(getattr(obj, n))]
            hint = did_you_mean(part, names, cutoff=0.5) or f" Callables there: {', '.join(names[:12])}"
            raise BenchError(f"{module_name} has no factory {attr!r}.{hint}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise BenchError(f"{text} is not callable: give a function or class that returns an nn.Module")
    return obj


def declared_preprocessing(spec: ModelSpec, sidecar: Path | None) -> Preprocessing:
    """Flags first, then the sidecar's `mean`, `std`, `input_range`; nothing declared = [0, 1] pixels."""
    meta: dict[str, Any] = {}
    if sidecar is not None and sidecar.exists():
        meta = read_json_object(sidecar, "model sidecar", BenchError)
    try:
        input_range = spec.input_range or InputRange(meta.get("input_range", InputRange.UNIT.value))
    except (ValueError, TypeError):
        raise BenchError(f"sidecar {sidecar}: input_range must be one of "
                         f"{', '.join(r.value for r in InputRange)}") from None
    mean = spec.mean if spec.mean is not None else _sidecar_numbers(meta, "mean", sidecar)
    std = spec.std if spec.std is not None else _sidecar_numbers(meta, "std", sidecar)
    return Preprocessing(mean, std, input_range)


def _sidecar_numbers(meta: dict[str, Any], key: str, sidecar: Path | None) -> tuple[float, ...] | None:
    if key not in meta:
        return None
    values = meta[key]
    if not isinstance(values, list) or not values or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise BenchError(f"sidecar {sidecar}: {key} must be a list of finite numbers, e.g. [0.4914, 0.4822, 0.4465]")
    return tuple(float(v) for v in values)


class ExportedModel(nn.Module):
    """A torch.export program as a plain module. Its graph module refuses train()/eval(), so it is
    kept out of the module tree; it runs on the device it was exported for, weights frozen."""

    def __init__(self, program_module: nn.Module) -> None:
        super().__init__()
        for p in program_module.parameters():
            p.requires_grad_(False)
        self._program = [program_module]  # a list: not registered as a submodule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self._program[0](x)
        return out


def _as_module(obj: Any, what: str) -> nn.Module:
    if not isinstance(obj, nn.Module):
        raise BenchError(f"{what} gave a {type(obj).__name__}, not a torch.nn.Module")
    return obj


def factory_identity(factory: str, weights_sha256: str) -> str:
    """The recorded sha256 of `factory` with weights: the same weights behind other code (a
    rounding layer, a noise layer) are another model, whose records must not mix with theirs."""
    return hashlib.sha256(f"{factory}\n{weights_sha256}".encode()).hexdigest()


def _load_factory(spec: ModelSpec, expected: str | None) -> LoadedModel:
    factory = import_factory(spec.text)
    try:
        built = factory()
    except Exception as exc:  # the user's own code failed: say where, in one line
        raise BenchError(f"factory {spec.text} raised {type(exc).__name__}: {first_line(exc)}") from None
    module = _as_module(built, f"factory {spec.text}")
    if spec.weights is None:
        digest = state_dict_sha256(module)
        if expected is not None and digest != expected.lower():
            raise BenchError(f"{spec.text}'s weights have sha256 {digest[:16]}… but --sha256 expects {expected[:16]}…")
        path = Path(spec.text)
    else:
        readable_file(spec.weights, "--weights")
        digest = factory_identity(spec.text, sha256_file(spec.weights))
        if expected is not None and expected.lower() != digest:  # the weights file's own hash is accepted too
            check_sha256(spec.weights, expected)
        state = state_dict_of(load_tensors(spec.weights, trust=spec.trust, what="--weights"), spec.weights)
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise BenchError(f"{spec.weights} does not fit {spec.text}: {str(exc).splitlines()[0]}") from None
        path = spec.weights
    sidecar = spec.weights.with_suffix(".json") if spec.weights else None
    return LoadedModel(module, SourceKind.FACTORY, spec.text.partition(":")[2].split(".")[-1], path, digest,
                       declared_preprocessing(spec, sidecar))


def _load_file(spec: ModelSpec, expected: str | None) -> LoadedModel:
    path = Path(spec.text)
    digest = check_sha256(path, expected)
    kind = file_kind(path)
    loader = FILE_LOADERS[kind]
    module = loader(path, spec.trust)
    return LoadedModel(module, kind, path.stem, path, digest, declared_preprocessing(spec, path.with_suffix(".json")))


def _torchscript(path: Path, trust: bool) -> nn.Module:
    if not trust:
        raise refusal(path, "a TorchScript archive is a program", "loading compiles and runs its TorchScript "
                      "code; the published weights_only bypass CVE-2025-32434 went through this path")
    try:
        return _as_module(torch.jit.load(str(path), map_location="cpu"), str(path))
    except BenchError:
        raise
    except Exception as exc:  # a damaged archive raises RuntimeError, ValueError, …
        raise BenchError(f"{path} is not a loadable TorchScript archive (corrupt or truncated?): "
                         f"{first_line(exc)}") from None


def _exported(path: Path, trust: bool) -> nn.Module:
    if not trust:
        raise refusal(path, "a torch.export archive carries code for its loader", "torch.export runs the "
                      "program's guard code with exec, evaluates its shape expressions with sympy, resolves "
                      "its call targets by name and unpickles entries with the full unpickler")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ExportedModel(torch.export.load(str(path)).module())
    except Exception as exc:  # torch.export raises many types for a foreign archive
        raise BenchError(f"{path} is not a loadable torch.export program: {first_line(exc)}") from None


def _pickled(path: Path, trust: bool) -> nn.Module:
    obj = load_tensors(path, trust=trust, what="model file")
    if not isinstance(obj, nn.Module):
        raise BenchError(f"{path} holds weights ({type(obj).__name__}), not a model: give the code that builds "
                         f"it with --model package.module:factory --weights {path}")
    return obj


FILE_LOADERS: dict[SourceKind, Callable[[Path, bool], nn.Module]] = {
    SourceKind.TORCHSCRIPT: _torchscript, SourceKind.EXPORT: _exported, SourceKind.PICKLE: _pickled}


def _load_robustbench(spec: ModelSpec, dataset: str, norm: str, expected: str | None) -> LoadedModel:
    from bench.loading.zoo import load_zoo_model

    name = spec.text[len(ROBUSTBENCH_PREFIX):]
    if spec.mean is not None or spec.input_range is not None:
        raise BenchError("RobustBench models normalize inside and take [0, 1] pixels: drop --mean/--std/--input-range")
    zoo = load_zoo_model(name, dataset, norm, spec.model_dir, trust=spec.trust, expected_sha256=expected)
    return LoadedModel(zoo.module, SourceKind.ROBUSTBENCH, f"robustbench-{name}", zoo.path, zoo.sha256,
                       Preprocessing(), {"zoo": f"{dataset}/{norm}/{name}",
                                         **({"members": [f.name for f in zoo.files]} if len(zoo.files) > 1 else {})})


def load_user_model(spec: ModelSpec, dataset: str, norm: str, expected_sha256: str | None = None) -> LoadedModel:
    kind = spec.kind()
    if kind is SourceKind.ROBUSTBENCH:
        loaded = _load_robustbench(spec, dataset, norm, expected_sha256)
    elif kind is SourceKind.FACTORY:
        loaded = _load_factory(spec, expected_sha256)
    else:
        loaded = _load_file(spec, expected_sha256)
    loaded.module.eval()
    return loaded
