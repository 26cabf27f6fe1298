"""`--save-adv`: the first adversarial example found for each point, kept only when asked.

Saved next to the resume state after every batch (so a resumed run keeps what it found before the
interruption) and moved next to the record at the end: `<record>.adv.pt`, a dict of the test-set
`index`, the `x_adv` tensor (clean input where nothing broke the point) and `broken` flags.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from bench.errors import BenchError
from bench.files import atomic_write
from bench.untrusted import load_tensors


class AdversarialStore:
    def __init__(self, path: Path | None, x: torch.Tensor, indices: np.ndarray) -> None:
        self.path = path  # None: kept in memory only (the Python API without save)
        self.indices = torch.as_tensor(indices)
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
        torch.save({"index": self.indices, "x_adv": self.x_adv, "broken": self.broken}, buffer)
        atomic_write(target, buffer.getvalue())
        return target

    def finish(self, record_path: Path) -> Path:
        final = record_path.with_suffix(".adv.pt")
        self.save(final)
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        return final
