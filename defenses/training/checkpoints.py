"""Checkpoint files (+ JSON sidecar): written atomically, read with sha256 checks and weights_only.

A checkpoint is a plain state_dict of an architecture from `defenses.nets.archs`; the sidecar says
which architecture, dataset, defense and recipe produced it, and the file's sha256.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.data import DATASETS
from bench.errors import BenchError
from bench.files import atomic_write, read_json_object, sha256_file
from bench.loading.untrusted import load_tensors, readable_file
from defenses.nets.archs import ARCHS, is_user_factory

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT_DIR = Path(os.environ.get("BENCH_CHECKPOINT_DIR", REPO_ROOT / "checkpoints"))


def sidecar_path(path: Path) -> Path:
    return path.with_suffix(".json")


def default_path(dataset: str, defense: str, arch: str, budget: str = "recipe") -> Path:
    """checkpoints/<dataset>/ for the registered recipes, checkpoints/<dataset>-<budget>/ for another
    training budget (those never replace the committed recipe checkpoints)."""
    folder = dataset if budget == "recipe" else f"{dataset}-{budget}"
    return CHECKPOINT_DIR / folder / f"{defense}-{arch.replace(':', '.')}.pt"  # a user's package.module:factory


def atomic_torch_save(obj: Any, path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write(path, buffer.getvalue())


def save(model: nn.Module, path: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Write weights and sidecar; returns the sidecar (with the weights' sha256)."""
    atomic_torch_save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
    text = json.dumps({**meta, "file": path.name, "sha256": sha256_file(path)}, indent=2, sort_keys=True)
    atomic_write(sidecar_path(path), (text + "\n").encode())
    sidecar: dict[str, Any] = json.loads(text)  # exactly what is on disk (tuples became lists)
    return sidecar


def read_sidecar(path: Path) -> dict[str, Any]:
    side = sidecar_path(path)
    if not side.exists():
        raise BenchError(f"{path} has no sidecar {side.name}: it says which architecture and dataset "
                         "the weights belong to (checkpoints written by `bench train` have one)")
    meta = read_json_object(side, "checkpoint sidecar", BenchError)
    for key in ("arch", "dataset", "sha256"):
        if key not in meta:
            raise BenchError(f"sidecar {side} lacks the field {key!r}")
        if not isinstance(meta[key], str):
            raise BenchError(f"sidecar {side}: {key} must be a string, not {type(meta[key]).__name__}")
    return meta


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    state = load_tensors(path, trust=False, what="checkpoint", trustable=False)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BenchError(f"{path} does not hold a state_dict of tensors")
    return state


def load(path: Path, expected_sha256: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Build the sidecar's architecture and load the verified weights into it (strict)."""
    readable_file(path, "checkpoint")
    meta = read_sidecar(path)
    actual = sha256_file(path)
    for source, expected in (("sidecar", meta["sha256"]), ("--sha256", expected_sha256)):
        if expected is not None and actual != expected:
            raise BenchError(f"{path} has sha256 {actual[:16]}… but the {source} expects "
                             f"{expected[:16]}…: the file is corrupt, truncated or not the one recorded")
    if is_user_factory(meta["arch"]):
        raise BenchError(f"{path} was trained on --arch {meta['arch']}, code of yours: a file never names code "
                         f"to import, so evaluate it with --model {meta['arch']} --weights {path}")
    model = ARCHS.get(meta["arch"])(DATASETS.get(meta["dataset"]))
    try:
        model.load_state_dict(_load_state_dict(path), strict=True)
    except RuntimeError as exc:
        raise BenchError(f"{path} does not match architecture {meta['arch']!r} for {meta['dataset']}: "
                         f"{str(exc).splitlines()[0]}") from None
    return model.eval(), meta
