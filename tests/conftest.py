"""Shared fixtures: real Fashion-MNIST points and small checkpoints trained by our own trainer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from bench import data
from bench.model import ModelUnderTest
from defenses import checkpoints

REPO = Path(__file__).resolve().parent.parent
COMMITTED = REPO / "checkpoints" / "fashion-mnist"


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
