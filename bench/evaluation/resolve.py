"""Turn `--defense NAME` or `--checkpoint PATH` into a verified model and what we know about it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from bench.errors import BenchError
from bench.evaluation.committed import committed_checkpoint
from bench.evaluation.config import RunConfig
from bench.loading.sources import ModelSpec, Preprocessing, load_user_model, state_dict_sha256
from bench.records.schema import portable_path


@dataclass(frozen=True)
class ResolvedModel:
    module: nn.Module
    label: str  # short name used in file names: the defense or the checkpoint's stem
    path: Path
    sha256: str
    sidecar: dict[str, Any]
    source: str = "checkpoint"  # or a `bench.loading.sources.SourceKind` value
    preprocessing: Preprocessing = Preprocessing()

    def input_description(self) -> str:
        if self.source == "checkpoint":  # our architectures normalize inside
            return "[0, 1] pixels; normalization inside the architecture"
        if self.source == IN_PROCESS:
            return "[0, 1] pixels; whatever normalization the module does itself"
        return self.preprocessing.describe()

    def recorded_path(self) -> str:
        """What the record names as the model's file: none for a module handed over in memory."""
        return str(self.path) if self.source == IN_PROCESS else portable_path(self.path)


def resolve_model(cfg: RunConfig) -> ResolvedModel:
    resolved = resolve(cfg.dataset, cfg.threat.norm.value, defense=cfg.defense, checkpoint=cfg.checkpoint,
                       model=cfg.model, sha256=cfg.sha256)
    return dataclasses.replace(resolved, label=cfg.label) if cfg.label else resolved


def resolve(dataset: str, norm: str, *, defense: str | None = None, checkpoint: Path | None = None,
            model: ModelSpec | None = None, sha256: str | None = None) -> ResolvedModel:
    """One of a registered defense (its committed checkpoint), a checkpoint of ours, or a user
    model spec, loaded without running code from the file unless the spec trusts it."""
    from defenses.training import checkpoints

    if model is not None:
        loaded = load_user_model(model, dataset, norm, sha256)
        arch = type(loaded.module).__name__
        return ResolvedModel(loaded.module, loaded.label, loaded.path, loaded.sha256,
                             {"arch": arch, "dataset": dataset, **loaded.meta}, loaded.kind.value,
                             loaded.preprocessing)
    if defense is not None:
        committed = committed_checkpoint(dataset, defense)
        if committed is None:
            raise BenchError(f"defense {defense!r} has no recipe for {dataset}")
        path = committed
        if not path.is_file():
            raise BenchError(f"no checkpoint of {defense} for {dataset} at {path}: train one with "
                             f"`bench train --defense {defense} --dataset {dataset}`")
        label = defense
    else:
        assert checkpoint is not None
        path, label = checkpoint, checkpoint.stem
    module, sidecar = checkpoints.load(path, sha256)
    if sidecar["dataset"] != dataset:
        raise BenchError(f"{path} was trained on {sidecar['dataset']}, not {dataset}")
    return ResolvedModel(module, label, path, sidecar["sha256"], sidecar)


IN_PROCESS = "module"  # ResolvedModel.source of an nn.Module handed to the Python API


def in_process(module: nn.Module, dataset: str) -> ResolvedModel:
    """An nn.Module taking [0, 1] pixels, named by its class and pinned by a hash of its state
    (the one a factory without weights gets)."""
    return ResolvedModel(module, type(module).__name__, Path(f"<{type(module).__name__} in memory>"),
                         state_dict_sha256(module), {"arch": type(module).__name__, "dataset": dataset}, IN_PROCESS,
                         Preprocessing())


@dataclass(frozen=True)
class NamedModel:
    """A model spec string sorted into what it names: exactly one field is set."""

    defense: str | None = None
    checkpoint: Path | None = None
    model: str | None = None  # a user-model spec: robustbench:NAME, package.module:factory, a model file


def name_model(text: str) -> NamedModel:
    """A registered defense, a `bench train` checkpoint (a file with a valid sidecar), or a user
    model spec. A bare word that is none of these gets the close defense names."""
    from defenses import DEFENSES
    from defenses.training.checkpoints import read_sidecar

    if text in DEFENSES:
        return NamedModel(defense=text)
    path = Path(text)
    if not path.exists() and ":" not in text and "/" not in text and not path.suffix:
        raise BenchError(f"{text!r} is not a model: {DEFENSES.unknown_message(text)}; or give a checkpoint "
                         "file, robustbench:NAME or package.module:factory")
    if path.is_file():
        try:
            read_sidecar(path)
            return NamedModel(checkpoint=path)
        except BenchError:
            pass
    return NamedModel(model=text)
