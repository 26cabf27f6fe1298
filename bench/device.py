"""Which torch device a command runs on: parsed once from `--device`, the same rule everywhere."""

from __future__ import annotations

import os

import torch

from bench.errors import BenchError


def resolve_device(text: str) -> torch.device:
    """`auto` (CUDA when available, else CPU), `cpu`, `cuda` or `cuda:N`. Under torchrun an
    unpinned CUDA device is the rank's own GPU (LOCAL_RANK)."""
    if text == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(text)
        except RuntimeError:
            raise BenchError(f"invalid --device {text!r}: use cpu, cuda, cuda:N or auto") from None
        if device.type not in ("cpu", "cuda"):
            raise BenchError(f"invalid --device {text!r}: use cpu, cuda, cuda:N or auto")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise BenchError(f"--device {text} requested but CUDA is not available here")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise BenchError(f"--device {text}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device
