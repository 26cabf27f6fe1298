"""Turn `--defense NAME` or `--checkpoint PATH` into a verified model and what we know about it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from bench.config import RunConfig
from bench.errors import BenchError
from bench.sources import Preprocessing, load_user_model


@dataclass(frozen=True)
class ResolvedModel:
    module: nn.Module
    label: str  # short name used in file names: the defense or the checkpoint's stem
    path: Path
    sha256: str
    sidecar: dict[str, Any]
    source: str = "checkpoint"  # or a `bench.sources.SourceKind` value
    preprocessing: Preprocessing = Preprocessing()

    def input_description(self) -> str:
        if self.source == "checkpoint":  # our architectures normalize inside
            return "[0, 1] pixels; normalization inside the architecture"
        return self.preprocessing.describe()


def committed_checkpoint(dataset: str, defense: str) -> Path | None:
    """Where `--defense NAME` looks for `dataset` (None when the defense has no recipe for it)."""
    from defenses import DEFENSES, checkpoints

    recipe = DEFENSES.get(defense).recipes.get(dataset)
    return checkpoints.default_path(dataset, defense, recipe.arch) if recipe else None


def committed_defenses(dataset: str) -> list[str]:
    """Registered defenses whose committed checkpoint for `dataset` exists."""
    from defenses import DEFENSES

    return [name for name, _ in DEFENSES.items() if (path := committed_checkpoint(dataset, name)) and path.is_file()]


def resolve_model(cfg: RunConfig) -> ResolvedModel:
    from defenses import checkpoints

    if cfg.model is not None:
        loaded = load_user_model(cfg.model, cfg.dataset, cfg.threat.norm.value, cfg.sha256)
        arch = type(loaded.module).__name__
        return ResolvedModel(loaded.module, loaded.label, loaded.path, loaded.sha256,
                             {"arch": arch, "dataset": cfg.dataset, **loaded.meta}, loaded.kind.value,
                             loaded.preprocessing)
    if cfg.defense is not None:
        committed = committed_checkpoint(cfg.dataset, cfg.defense)
        if committed is None:
            raise BenchError(f"defense {cfg.defense!r} has no recipe for {cfg.dataset}")
        path = committed
        if not path.is_file():
            raise BenchError(f"no checkpoint of {cfg.defense} for {cfg.dataset} at {path}: train one with "
                             f"`bench train --defense {cfg.defense} --dataset {cfg.dataset}`")
        label = cfg.defense
    else:
        assert cfg.checkpoint is not None
        path, label = cfg.checkpoint, cfg.checkpoint.stem
    module, sidecar = checkpoints.load(path, cfg.sha256)
    if sidecar["dataset"] != cfg.dataset:
        raise BenchError(f"{path} was trained on {sidecar['dataset']}, not {cfg.dataset}")
    return ResolvedModel(module, label, path, sidecar["sha256"], sidecar)
