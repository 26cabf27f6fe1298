"""MART (Wang et al., ICLR 2020): boosted CE on x_adv + β·KL(p(x) ‖ p(x_adv))·(1 − p_y(x))."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from defenses.pgd_at import PGDAT
from defenses.training.method import Method, Start
from defenses.training.objectives import mart
from defenses.training.recipes import STEP_0007, cifar, fmnist_cpu, per_cifar
from defenses.training.registry import DEFENSES, Defense


@dataclass(frozen=True)
class MartParams:
    beta: float = 5.0  # the official ResNet-18 value (6 for WRN-34-10)


class Mart(PGDAT, Method):
    """Inner attack: PGD-k on CE from x + 0.001·N, as in the official code."""

    start = Start.GAUSSIAN

    def loss(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, epoch: int) -> torch.Tensor:
        x_adv = self.adversarial(x, y, gen)
        return mart(self.model(x), self.model(x_adv), y, self.hp.beta)


DEFENSES.add("mart", Defense(
    name="mart", published=True,
    summary="MART: boosted CE on misclassification-aware adversarial examples + weighted KL (β = 5)",
    paper="arXiv:1911.06510 (ICLR 2020)",
    method=Mart,
    params=MartParams,
    # Official ResNet-18: lr 0.01, wd 3.5e-3, 120 epochs, decay at 75, 90, 100.
    recipes=per_cifar(cifar("resnet18", 120, lr=0.01, weight_decay=3.5e-3, milestones=(75, 90, 100),
                            attack_rel_step=STEP_0007), fmnist_cpu()),
    variant="official loss, CE inner attack",
))
