"""Factories for `--model tests.user_models:NAME` in the tests (importable from the repository root)."""

from __future__ import annotations

import torch
from torch import nn

from bench.data import DATASETS
from defenses.nets.archs import SmallCNN


def cifar_shaped_mlp() -> nn.Module:
    """Expects 3×32×32 inputs: the wrong-input-shape refusal."""
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))


class ExpectsBytes(SmallCNN):
    """A SmallCNN fed with 0-255 pixels: it rescales to [0, 1] first."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x / 255.0)


def bytes_smallcnn() -> nn.Module:
    return ExpectsBytes(DATASETS.get("fashion-mnist"))


class ExpectsNormalized(SmallCNN):
    """A SmallCNN fed with (x - 0.5) / 0.25: it undoes that first."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x * 0.25 + 0.5)


def normalized_smallcnn() -> nn.Module:
    return ExpectsNormalized(DATASETS.get("fashion-mnist"))


def small_mlp() -> nn.Module:
    """A researcher's own architecture for `bench train --arch`: takes [0, 1] Fashion-MNIST images."""
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 64), nn.ReLU(), nn.Linear(64, 10))


NOT_A_FACTORY = 3


class LogitsAndFeatures(nn.Module):
    """Returns (logits, features), as many research models do: refused with a clear message."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.body(x)
        return logits, logits.detach()


def tuple_output() -> nn.Module:
    return LogitsAndFeatures()


def raising_factory() -> nn.Module:
    raise ValueError("the factory needs a config file")


def not_a_module() -> object:
    return {"weights": 1}
