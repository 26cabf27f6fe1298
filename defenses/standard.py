"""Natural training: cross-entropy on clean inputs. The non-robust reference point (and AFD's start)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from defenses.training.method import Method
from defenses.training.registry import DEFENSES, Defense, Recipe


class Natural(Method):
    def loss(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, epoch: int) -> torch.Tensor:
        return F.cross_entropy(self.model(x), y)


DEFENSES.add("standard", Defense(
    name="standard", published=True,
    summary="natural training (no defense): the reference every robust model is compared with",
    paper="none",
    method=Natural,
    recipes={
        # Natural training is not under the adversarial budget rule: it is the reference point and
        # AFD's pre-trained start, so it is trained to convergence (8 epochs over 54k points).
        "fashion-mnist": Recipe(arch="smallcnn", epochs=8, lr=0.02, weight_decay=5e-4, milestones=(6,)),
        "mnist": Recipe(arch="smallcnn", epochs=10, lr=0.01, milestones=(8,)),
        # docs/design.md (AFD): AFD needs naturally trained models, trained to convergence.
        "cifar10": Recipe(arch="resnet18", epochs=100, lr=0.1, milestones=(50, 75), augment=True),
        "cifar100": Recipe(arch="resnet18", epochs=100, lr=0.1, milestones=(50, 75), augment=True),
        "svhn": Recipe(arch="resnet18", epochs=50, lr=0.01, milestones=(25, 40)),
    },
    variant="cross-entropy on clean inputs",
    selection_metric="clean",
))
