"""PGD-AT (Madry et al., ICLR 2018): cross-entropy on PGD adversarial examples only."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from defenses.training.method import Method, Start, eval_mode, perturb, recipe_attack
from defenses.training.recipes import cifar, fmnist_cpu
from defenses.training.registry import DEFENSES, Defense, Recipe


class PGDAT(Method):
    start = Start.UNIFORM

    def adversarial(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """PGD-k on CE (from a uniform random start for PGD-AT), BatchNorm frozen."""
        with eval_mode(self.model):
            return perturb(lambda xa: F.cross_entropy(self.model(xa), y, reduction="sum"), x,
                           start=self.start, gen=gen, **recipe_attack(self.recipe))

    def loss(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, epoch: int) -> torch.Tensor:
        return F.cross_entropy(self.model(self.adversarial(x, y, gen)), y)


# "Bag of tricks" schedule (Pang et al.): 110 epochs, decay at 100 and 105, PGD-10 step 2/255.
_CIFAR = cifar("resnet18", 110, lr=0.1, weight_decay=5e-4, milestones=(100, 105))

DEFENSES.add("pgd-at", Defense(
    name="pgd-at", published=True, surrogate_rank=0,
    summary="Madry PGD adversarial training: CE on PGD-10 examples (random start, step ε/4)",
    paper="arXiv:1706.06083",
    method=PGDAT,
    recipes={
        "fashion-mnist": fmnist_cpu(),
        "mnist": Recipe(arch="smallcnn", epochs=30, lr=0.01, milestones=(25,), eps=0.3,
                        attack_steps=40, attack_rel_step=0.0333),
        "cifar10": _CIFAR,
        "cifar100": _CIFAR,
        "svhn": _CIFAR.replace(lr=0.01, epochs=50, milestones=(25, 40), augment=False),
    },
    variant="adversarial loss only, PGD-10 inner attack",
))
