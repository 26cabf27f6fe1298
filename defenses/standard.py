"""Natural training: cross-entropy on clean inputs. The non-robust reference point."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from defenses.registry import DEFENSES, Defense, Recipe


def natural_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe,
                 gen: torch.Generator) -> torch.Tensor:
    return F.cross_entropy(model(x), y)


DEFENSES.add("standard", Defense(
    name="standard",
    summary="natural training (no defense): the reference every robust model is compared with",
    paper="none",
    loss=natural_loss,
    recipes={
        "fashion-mnist": Recipe(arch="smallcnn", epochs=8, lr=0.02, weight_decay=5e-4, milestones=(6,)),
        "mnist": Recipe(arch="smallcnn", epochs=10, lr=0.01, milestones=(8,)),
        "cifar10": Recipe(arch="resnet18", epochs=100, lr=0.1, milestones=(50, 75), augment=True),
        "cifar100": Recipe(arch="resnet18", epochs=100, lr=0.1, milestones=(50, 75), augment=True),
        "svhn": Recipe(arch="resnet18", epochs=50, lr=0.01, milestones=(25, 40)),
    },
    selection_metric="clean",
))
