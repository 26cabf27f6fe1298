"""RobustBench's model zoo, importable and offline.

robustbench 1.1.1 from PyPI does not import as installed: its `__init__` imports `autoattack`
(the module name of the original git install of AutoAttack) while the package it depends on is
`pyautoattack`, and its loaders import `pkg_resources`, which setuptools ≥ 81 no longer ships.
This module is the one place that fixes that, without touching site-packages: the installed
pyautoattack (and its `state` submodule) is registered under the expected names before
robustbench is imported, and setup.cfg bounds setuptools below 81. Zoo weights are read from
robustbench's own layout, `<model_dir>/<dataset>/<threat>/<name>.pt` (an ensemble's members:
`<name>.pt_m0.pt`, …); every file is checked before robustbench reads it, and nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from bench.errors import BenchError, did_you_mean
from bench.files import sha256_file
from bench.loading.untrusted import load_tensors, no_network

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


@dataclass(frozen=True)
class ZooModel:
    module: nn.Module
    path: Path  # robustbench's file name for the model (an ensemble's members sit beside it)
    files: tuple[Path, ...]  # every file robustbench read, in order
    sha256: str  # the single file's sha256, or one over the members' (name and sha256 per line)


def _entry(name: str, dataset: str, threat: str) -> Any:
    if dataset not in ZOO_DATASETS or threat not in ZOO_THREATS:
        raise BenchError(f"RobustBench has no {dataset}/{threat} zoo: datasets {', '.join(ZOO_DATASETS)}, "
                         f"threat models {', '.join(ZOO_THREATS)}")
    import_robustbench()
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    entries: dict[str, Any] = model_dicts[BenchmarkDataset(ZOO_DATASETS[dataset])][ThreatModel(ZOO_THREATS[threat])]
    if name not in entries:
        raise BenchError(f"no RobustBench model {name!r} for {dataset}/{threat}."
                         + did_you_mean(name, entries, cutoff=0.5))
    return entries[name]


def zoo_files(name: str, dataset: str, threat: str, model_dir: Path) -> tuple[Path, ...]:
    """The files robustbench.load_model reads for `name`: one, or one per ensemble member."""
    entry = _entry(name, dataset, threat)
    path = zoo_path(model_dir, name, dataset, threat)
    ids = entry.get("gdrive_id")
    if ids is None:  # robustbench then builds the model from a hub (timm or torchvision): a download
        raise BenchError(f"RobustBench serves {name} through a model hub download, which this suite never "
                         "does: it has no weights file to put on disk")
    if isinstance(ids, list):
        return tuple(Path(f"{path}_m{i}.pt") for i in range(len(ids)))
    return (path,)


def _fingerprint(files: tuple[Path, ...]) -> str:
    if len(files) == 1:
        return sha256_file(files[0])
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.name} {sha256_file(file)}\n".encode())
    return digest.hexdigest()


def load_zoo_model(name: str, dataset: str, threat: str, model_dir: Path, *, trust: bool = False,
                   expected_sha256: str | None = None) -> ZooModel:
    """A RobustBench zoo model from weights already on disk: every file robustbench will read is
    checked (present, weights-only, pinned) before it reads them, and hashed again afterwards, so
    the recorded sha256 is that of what was evaluated. Never a download."""
    files = zoo_files(name, dataset, threat, model_dir)
    missing = [f for f in files if not f.is_file()]
    if missing:
        fetch = (f"python -c \"import robustbench; robustbench.load_model('{name}', model_dir='{model_dir}', "
                 f"dataset='{ZOO_DATASETS[dataset]}', threat_model='{ZOO_THREATS[threat]}')\"")
        raise BenchError(f"{', '.join(map(str, missing))} does not exist: this machine does not download. "
                         f"On one with network run `{fetch}` and copy the folder here")
    for file in files:  # a check: the tensors are mapped, not read (robustbench reads them once, below)
        load_tensors(file, trust=trust, what="RobustBench weights", mmap=True)
    digest = _fingerprint(files)
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise BenchError(f"{files[0]} has sha256 {digest[:16]}… but --sha256 expects {expected_sha256[:16]}…: "
                         "the file is corrupt, truncated or not the one you meant")
    rb = import_robustbench()
    with no_network(f"robustbench's loader for {name}"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model: nn.Module = rb.load_model(name, model_dir=str(model_dir), dataset=ZOO_DATASETS[dataset],
                                             threat_model=ZOO_THREATS[threat])
        except BenchError:
            raise
        except Exception as exc:  # robustbench raises anything for a file that does not fit its model
            raise BenchError(f"robustbench could not load {name} from {files[0]}: "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if _fingerprint(files) != digest:
        raise BenchError(f"{files[0]} changed while it was being loaded: run again")
    return ZooModel(model.eval(), zoo_path(model_dir, name, dataset, threat), files, digest)
