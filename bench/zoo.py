"""RobustBench's model zoo, importable and offline.

robustbench 1.1.1 from PyPI does not import as installed: its `__init__` imports `autoattack`
(the module name of the original git install of AutoAttack) while the package it depends on is
`pyautoattack`, and its loaders import `pkg_resources`, which setuptools ≥ 81 no longer ships.
This module is the one place that fixes that, without touching site-packages: the installed
pyautoattack (and its `state` submodule) is registered under the expected names before
robustbench is imported, and setup.cfg bounds setuptools below 81. Zoo weights are read from
robustbench's own layout, `<model_dir>/<dataset>/<threat>/<name>.pt`; nothing is downloaded.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from bench.errors import BenchError

ZOO_DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet": "imagenet"}
ZOO_THREATS = {"linf": "Linf", "l2": "L2", "corruptions": "corruptions"}


def import_robustbench() -> ModuleType:
    """`import robustbench`, with the official AutoAttack's PyPI package under its original name."""
    for alias, real in (("autoattack", "pyautoattack"), ("autoattack.state", "pyautoattack.state"),
                        ("autoattack.autopgd_base", "pyautoattack.autopgd_base")):
        if alias not in sys.modules:
            sys.modules[alias] = importlib.import_module(real)
    try:
        with warnings.catch_warnings():  # its import-time deprecation notices are not the user's business
            warnings.filterwarnings("ignore", message=".*pkg_resources is deprecated.*")
            warnings.filterwarnings("ignore", message=".*torch.jit.interface.*is deprecated.*")
            return importlib.import_module("robustbench")
    except ModuleNotFoundError as exc:
        hint = " (setuptools ≥ 81 dropped it: install 'setuptools<81')" if exc.name == "pkg_resources" else ""
        raise BenchError(f"robustbench cannot be imported: missing module {exc.name!r}{hint}") from None


def zoo_path(model_dir: Path, name: str, dataset: str, threat: str) -> Path:
    return model_dir / ZOO_DATASETS[dataset] / ZOO_THREATS[threat] / f"{name}.pt"


def load_zoo_model(name: str, dataset: str, threat: str, model_dir: Path) -> nn.Module:
    """A RobustBench zoo model from weights already on disk (never a download)."""
    if dataset not in ZOO_DATASETS or threat not in ZOO_THREATS:
        raise BenchError(f"RobustBench has no {dataset}/{threat} zoo: datasets {', '.join(ZOO_DATASETS)}, "
                         f"threat models {', '.join(ZOO_THREATS)}")
    rb = import_robustbench()
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    entries: dict[str, Any] = model_dicts[BenchmarkDataset(ZOO_DATASETS[dataset])][ThreatModel(ZOO_THREATS[threat])]
    if name not in entries:
        import difflib

        close = difflib.get_close_matches(name, list(entries), n=3, cutoff=0.5)
        raise BenchError(f"no RobustBench model {name!r} for {dataset}/{threat}."
                         + (f" Did you mean: {', '.join(close)}?" if close else ""))
    path = zoo_path(model_dir, name, dataset, threat)
    if not path.is_file():
        raise BenchError(f"{path} does not exist: this machine does not download. On one with network run "
                         f"`python -c \"import robustbench; robustbench.load_model('{name}', model_dir='{model_dir}', "
                         f"dataset='{ZOO_DATASETS[dataset]}', threat_model='{ZOO_THREATS[threat]}')\"` "
                         "and copy the folder here")
    model: nn.Module = rb.load_model(name, model_dir=str(model_dir), dataset=ZOO_DATASETS[dataset],
                                     threat_model=ZOO_THREATS[threat])
    return model.eval()
