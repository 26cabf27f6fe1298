"""Shared fixtures: real Fashion-MNIST points and small checkpoints trained by our own trainer."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bench import data
from bench.loading.model import ModelUnderTest
from defenses.training import checkpoints

REPO = Path(__file__).resolve().parent.parent
COMMITTED = REPO / "checkpoints" / "fashion-mnist"


def board_labels() -> list[str]:
    """The rows the committed board ranks at ε = 0.1: every published defense (by name) and every other
    committed checkpoint (by its file's stem: the exactly decidable `pgd-at-mlp-2x64`)."""
    from defenses import DEFENSES, published

    own = {checkpoints.default_path("fashion-mnist", name, DEFENSES.get(name).recipes["fashion-mnist"].arch).name: name
           for name in published("fashion-mnist")}
    return sorted(own.get(path.name, path.stem) for path in COMMITTED.glob("*.pt"))


def read_json(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


@pytest.fixture(scope="session")
def fmnist_test() -> data.ImageSet:
    return data.load("fashion-mnist", data.Split.TEST)


@pytest.fixture(scope="session")
def natural_ckpt() -> Path:
    """The committed naturally trained SmallCNN (trained by `make checkpoints`)."""
    return COMMITTED / "standard-smallcnn.pt"


@pytest.fixture()
def natural_copy(natural_ckpt: Path, tmp_path: Path) -> Path:
    """A private copy (with sidecar) that a test may damage."""
    dst = tmp_path / natural_ckpt.name
    shutil.copy(natural_ckpt, dst)
    shutil.copy(checkpoints.sidecar_path(natural_ckpt), checkpoints.sidecar_path(dst))
    return dst


@pytest.fixture(scope="session")
def natural_model(natural_ckpt: Path) -> ModelUnderTest:
    module, _ = checkpoints.load(natural_ckpt)
    return ModelUnderTest(module, 10)


@pytest.fixture(scope="session")
def committed_robust() -> ModelUnderTest:
    module, _ = checkpoints.load(COMMITTED / "pgd-at-smallcnn.pt")
    return ModelUnderTest(module, 10)


@pytest.fixture(scope="session")
def points(fmnist_test: data.ImageSet) -> tuple[torch.Tensor, torch.Tensor]:
    return fmnist_test.batch(slice(0, 200))


def _write_tiny_cifar10(root, n_per_batch=16):
    """torchvision's CIFAR-10 layout (pickled batches) with random images: no network needed."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
                 "labels": rng.integers(0, 10, n_per_batch).tolist()}
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, handle)


@pytest.fixture(scope="module")
def tiny_cifar(tmp_path_factory):
    from torchvision.datasets import cifar

    root = tmp_path_factory.mktemp("cifar")
    _write_tiny_cifar10(root)
    # The fake files cannot match torchvision's md5 list; skip only that check.
    original = cifar.check_integrity
    cifar.check_integrity = lambda *args, **kwargs: True
    yield root
    cifar.check_integrity = original


def write_zoo_model(model_dir: Path) -> tuple[torch.nn.Module, Path]:
    """A RobustBench zoo architecture (Wong2020Fast) with seeded weights, saved in robustbench's
    layout under `model_dir`, as a download would have left it."""
    from bench.loading import zoo

    zoo.import_robustbench()
    from robustbench.model_zoo.cifar10 import Wong2020FastNet

    torch.manual_seed(0)
    net = Wong2020FastNet()
    path = zoo.zoo_path(model_dir, "Wong2020Fast", "cifar10", "linf")
    path.parent.mkdir(parents=True)
    torch.save(net.state_dict(), path)
    return net, path


def committed_results(dest: Path) -> Path:
    """The committed results/ tree (records, audits, derived files) as of git HEAD, under `dest`.

    Tests that compare derived files read these only: records a user's own `bench run` added to
    results/runs, or a results.csv it rewrote, never change what the tests see. Outside a git
    checkout the working tree stands in for HEAD.
    """
    import subprocess
    import tarfile

    try:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "HEAD", "results"], capture_output=True,
                                 check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        shutil.copytree(REPO / "results", dest / "results", ignore=shutil.ignore_patterns(".state", ".lock"))
        return dest / "results"
    import io

    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "results"


@pytest.fixture(scope="session")
def committed(tmp_path_factory) -> Path:
    """Read-only by convention: the committed results/ tree (see `committed_results`)."""
    return committed_results(tmp_path_factory.mktemp("committed"))


def leaderboard_of_committed(committed: Path, root: Path, *flags: str) -> Path:
    """`bench leaderboard FLAGS` over a copy of the committed records and audits only, in `root`."""
    from bench.cli import main

    shutil.copytree(committed / "runs", root / "runs")
    if (committed / "audits").is_dir():
        shutil.copytree(committed / "audits", root / "audits")
    assert main(["leaderboard", *flags, "--results-dir", str(root / "runs")]) == 0
    return root


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--quick", action="store_true",
                     help="the inner-loop tier: skip subprocess/browser suites and tests measured slow (tests/tiers.py)")


def pytest_configure(config: pytest.Config) -> None:
    import os

    from tests.tiers import DurationRecorder

    out = os.environ.get("BENCH_DURATIONS_OUT")
    if out:
        config.pluginmanager.register(DurationRecorder(Path(out)), "bench-durations")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--quick"):
        return
    from tests.tiers import measured, quick_selection

    kept, dropped = quick_selection(items, measured())
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
