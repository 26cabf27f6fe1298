"""PGD-AT (Madry et al., ICLR 2018): cross-entropy on PGD adversarial examples only.

The training attack is the harness's own PGD (`bench.attacks.gradient.pgd_iterates`), run with
the model in eval mode (BatchNorm statistics frozen), as in the TRADES/MART code lines.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.attacks.gradient import pgd_iterates
from bench.attacks.losses import Loss
from bench.threat import Norm
from defenses.registry import DEFENSES, Defense, Recipe


def adversarial_examples(model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe,
                         gen: torch.Generator) -> torch.Tensor:
    """PGD-k on CE from a uniform random start, model in eval mode, then back to train mode."""
    was_training = model.training
    model.eval()
    x_adv, _, _ = pgd_iterates(model, x, y, norm=Norm.LINF, eps=recipe.eps, steps=recipe.attack_steps,
                               step_size=recipe.attack_rel_step * recipe.eps, loss=Loss.CE, gen=gen)
    model.train(was_training)
    return x_adv.detach()


def pgd_at_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe,
                gen: torch.Generator) -> torch.Tensor:
    return F.cross_entropy(model(adversarial_examples(model, x, y, recipe, gen)), y)


_CIFAR = dict(arch="resnet18", epochs=110, lr=0.1, weight_decay=5e-4, milestones=(100, 105),
              eps=8 / 255, attack_steps=10, attack_rel_step=0.25, augment=True)

DEFENSES.add("pgd-at", Defense(
    name="pgd-at",
    summary="Madry PGD adversarial training: CE on PGD-10 examples (random start, step ε/4)",
    paper="arXiv:1706.06083",
    loss=pgd_at_loss,
    recipes={
        # CPU recipe: 8 epochs over 54k images (6k held out), PGD-10 at ε=0.1 (≈45 min on 2 cores).
        "fashion-mnist": Recipe(arch="smallcnn", epochs=8, lr=0.02, weight_decay=5e-4,
                                milestones=(6,), eps=0.1, attack_steps=10, attack_rel_step=0.25),
        "mnist": Recipe(arch="smallcnn", epochs=30, lr=0.01, milestones=(25,), eps=0.3,
                        attack_steps=40, attack_rel_step=0.0333),
        # "Bag of tricks" schedule (Pang et al.): 110 epochs, decay at 100 and 105.
        "cifar10": Recipe(**_CIFAR),  # type: ignore[arg-type]
        "cifar100": Recipe(**_CIFAR),  # type: ignore[arg-type]
        "svhn": Recipe(**{**_CIFAR, "lr": 0.01, "epochs": 50, "milestones": (25, 40),  # type: ignore[arg-type]
                          "augment": False}),
    },
))
