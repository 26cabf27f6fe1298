"""Defenses: a training loss plus a recipe per dataset. Adding one = one module + `DEFENSES.add`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from bench.registry import Registry


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the trained weights; every field can be overridden from the CLI."""

    arch: str
    epochs: int
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: tuple[int, ...] = ()  # epochs at which lr is multiplied by `gamma`
    gamma: float = 0.1
    eps: float = 0.0  # training ε (L∞); 0 for natural training
    attack_steps: int = 10
    attack_rel_step: float = 0.25  # step as a fraction of ε
    augment: bool = False  # random crop (pad 4) + horizontal flip, for CIFAR/SVHN-like data
    holdout_fraction: float = 0.1  # training data kept apart for model selection
    seed: int = 0

    def replace(self, **overrides: Any) -> Recipe:
        """Apply CLI overrides, ignoring ones left unset (None) so they never clobber the recipe."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})


LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, Recipe, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class Defense:
    name: str
    summary: str
    paper: str  # arXiv id or reference of the method
    loss: LossFn
    recipes: dict[str, Recipe] = field(default_factory=dict)  # per dataset
    selection_metric: str = "robust"  # held-out metric that picks the checkpoint: robust | clean


DEFENSES: Registry[Defense] = Registry("defense")


def _load_all() -> None:
    """Import the modules that register defenses (kept here so `import defenses` is enough)."""
    from defenses import pgd_at, standard  # noqa: F401


_load_all()
