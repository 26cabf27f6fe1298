"""Where a number came from: suite version, git commit, library versions, device."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from bench.version import VERSION

_REPO = Path(__file__).resolve().parent.parent


def git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_REPO, capture_output=True, text=True,
                             timeout=5, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=_REPO,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):  # a copied tree without git: the copier may say
        return os.environ.get("BENCH_GIT_SHA")
    return out.stdout.strip() + ("-dirty" if dirty else "")


def versions() -> dict[str, str | None]:
    import torchvision

    try:
        import pyautoattack
        aa_version: str | None = pyautoattack.__version__
    except ImportError:
        aa_version = None
    return {"bench": VERSION, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "pyautoattack": aa_version, "python": platform.python_version(),
            "cuda": torch.version.cuda if torch.cuda.is_available() else None}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp(device: torch.device) -> dict[str, Any]:
    return {"versions": versions(), "git_sha": git_sha(), "device": device_name(device),
            "date": now_iso()}
