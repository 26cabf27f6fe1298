"""Files of adversarial examples: what `--save-adv` writes and `bench verify-adv` checks.

The format (`bench-adv`, version 1) is a `torch.save`d dict of plain values, readable without
running code (the weights-only unpickler):

    format    "bench-adv"          version   1
    dataset   e.g. "fashion-mnist" split     "test"
    norm      "linf" or "l2"       eps       float, the budget the examples claim
    index     int64 [n]: test-split indices, distinct
    x_adv     float32 [n, C, H, W] in [0, 1]: the adversarial input for each index (the clean
              input itself where nothing was found)
    broken    bool [n] (optional): what the producer claims; verification recomputes it
    model_sha256, source: str (optional): the model attacked, where the file comes from

`--save-adv` keeps the first adversarial example found for each point, saved next to the resume
state after every batch (a resumed run keeps what it found before the interruption) and moved
next to the record at the end (`<record>.adv.pt`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.errors import BenchError
from bench.files import atomic_write
from bench.loading.untrusted import load_tensors
from bench.norms import distance
from bench.threat import Norm, ThreatModel
from bench.verify import TOLERANCE

FORMAT = "bench-adv"
VERSION = 1


@dataclass(frozen=True)
class AdversarialFile:
    """A read and structurally checked file; `check_against` ties it to the clean points."""

    path: Path
    dataset: str
    threat: ThreatModel
    index: np.ndarray
    x_adv: torch.Tensor
    model_sha256: str | None
    source: str | None

    def check_against(self, clean: torch.Tensor) -> None:
        """Every example inside the ε-ball of its own clean point and in [0, 1]; else the first
        offending one is named (a moved pixel, an index of another point, a smaller ε)."""
        if clean.shape != self.x_adv.shape:
            raise BenchError(f"{self.path}: x_adv has shape {tuple(self.x_adv.shape)}, the {self.dataset} points "
                             f"{tuple(clean.shape)}")
        if not bool(torch.isfinite(self.x_adv).all()):
            raise BenchError(f"{self.path}: x_adv holds NaN or infinite values")
        outside = (self.x_adv < -TOLERANCE).flatten(1).any(1) | (self.x_adv > 1 + TOLERANCE).flatten(1).any(1)
        if bool(outside.any()):
            k = int(outside.nonzero()[0])
            raise BenchError(f"{self.path}: example {k} (test index {int(self.index[k])}) has pixels outside [0, 1]")
        far = distance(self.threat.norm, self.x_adv.float(), clean.float()) > self.threat.eps + TOLERANCE
        if bool(far.any()):
            k = int(far.nonzero()[0])
            d = float(distance(self.threat.norm, self.x_adv[k:k + 1].float(), clean[k:k + 1].float())[0])
            raise BenchError(f"{self.path}: example {k} (test index {int(self.index[k])}) is {d:.6g} from its clean "
                             f"point in {self.threat.norm.value}, beyond ε={self.threat.eps:g} ({int(far.sum())} "
                             "such): the file is for other points or another ε, or was modified")


def _field(saved: dict[str, Any], key: str, kind: type | tuple[type, ...], path: Path) -> Any:
    value = saved.get(key)
    if not isinstance(value, kind):
        raise BenchError(f"{path}: field {key!r} is missing or not a {getattr(kind, '__name__', kind)}: not a "
                         f"{FORMAT} file (see docs/honest-numbers.md)")
    return value


def read(path: Path, test_size: int | None) -> AdversarialFile:
    """The file, refused in one line if it needs code to load, is not in the format, or names
    indices outside the test split (`test_size`, when known) or twice."""
    saved = load_tensors(path, trust=False, what="adversarial examples", trustable=False)
    if not isinstance(saved, dict):
        raise BenchError(f"{path}: holds a {type(saved).__name__}, not a {FORMAT} dict")
    if saved.get("format") != FORMAT or saved.get("version") != VERSION:
        raise BenchError(f"{path}: format {saved.get('format')!r} version {saved.get('version')!r}, expected "
                         f"{FORMAT!r} version {VERSION} (files from --save-adv before it lack the threat model: "
                         "rerun with --save-adv)")
    dataset = _field(saved, "dataset", str, path)
    if saved.get("split", "test") != "test":
        raise BenchError(f"{path}: split {saved.get('split')!r}; only test-split points can be verified")
    try:
        threat = ThreatModel(Norm.parse(_field(saved, "norm", str, path)), float(_field(saved, "eps", (int, float), path)))
    except BenchError as exc:
        raise BenchError(f"{path}: {exc}") from None
    index = _field(saved, "index", torch.Tensor, path)
    x_adv = _field(saved, "x_adv", torch.Tensor, path)
    if index.ndim != 1 or index.dtype not in (torch.int64, torch.int32) or x_adv.ndim != 4 \
            or x_adv.shape[0] != index.shape[0] or not x_adv.is_floating_point() or index.numel() == 0:
        raise BenchError(f"{path}: index must be integers [n] and x_adv floats [n, C, H, W] with the same n "
                         f"(got {tuple(index.shape)} {index.dtype}, {tuple(x_adv.shape)} {x_adv.dtype})")
    flat = index.numpy().astype(np.int64)
    if int(flat.min()) < 0 or (test_size is not None and int(flat.max()) >= test_size):
        raise BenchError(f"{path}: test indices must be in 0 … {(test_size or 2**31) - 1}, got {int(flat.min())} … "
                         f"{int(flat.max())}")
    if len(np.unique(flat)) != len(flat):
        raise BenchError(f"{path}: a test index appears more than once")
    optional = {k: saved.get(k) if isinstance(saved.get(k), str) else None for k in ("model_sha256", "source")}
    return AdversarialFile(path, dataset, threat, flat, x_adv.float(), optional["model_sha256"], optional["source"])


class AdversarialStore:
    def __init__(self, path: Path | None, x: torch.Tensor, indices: np.ndarray, *, dataset: str,
                 threat: ThreatModel, model_sha256: str) -> None:
        self.path = path  # None: kept in memory only (the Python API without save)
        self.indices = torch.as_tensor(indices)
        self.header = {"format": FORMAT, "version": VERSION, "dataset": dataset, "split": "test",
                       "norm": threat.norm.value, "eps": threat.eps, "model_sha256": model_sha256}
        if path is not None and path.is_file():
            saved = load_tensors(path, trust=False, what="saved adversarial examples", trustable=False)
            if not (isinstance(saved, dict) and isinstance(saved.get("x_adv"), torch.Tensor)
                    and isinstance(saved.get("broken"), torch.Tensor) and saved["x_adv"].shape == x.shape
                    and saved["broken"].shape == (x.shape[0],)):
                raise BenchError(f"saved adversarial examples {path} do not fit this run (shape or content): "
                                 "delete the file to start over")
            self.x_adv, self.broken = saved["x_adv"], saved["broken"].bool()
        else:
            self.x_adv, self.broken = x.clone(), torch.zeros(x.shape[0], dtype=torch.bool)

    def add(self, ids: torch.Tensor, x_adv: torch.Tensor, success: torch.Tensor) -> None:
        """Keep the first success per point (later attacks do not replace it)."""
        new = success.cpu() & ~self.broken[ids]
        self.x_adv[ids[new]] = x_adv.detach().float().cpu()[new]
        self.broken[ids[new]] = True

    def save(self, path: Path | None = None) -> Path | None:
        target = path or self.path
        if target is None:
            return None
        buffer = io.BytesIO()
        torch.save({**self.header, "index": self.indices, "x_adv": self.x_adv, "broken": self.broken}, buffer)
        atomic_write(target, buffer.getvalue())
        return target

    def finish(self, record_path: Path) -> Path:
        final = record_path.with_suffix(".adv.pt")
        self.save(final)
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        return final
