"""TRADES (Zhang et al., ICML 2019): CE(f(x), y) + β·KL(p(x) ‖ p(x_adv)), x_adv by PGD on that KL."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from defenses.training.method import Method, Start, eval_mode, perturb, recipe_attack
from defenses.training.objectives import trades_kl
from defenses.training.recipes import STEP_0007, cifar, fmnist_cpu, per_cifar
from defenses.training.registry import DEFENSES, Defense


@dataclass(frozen=True)
class TradesParams:
    beta: float = 6.0


def kl_adversarial(model: torch.nn.Module, x: torch.Tensor, recipe_kwargs: dict, gen: torch.Generator
                   ) -> torch.Tensor:
    """The TRADES inner attack: maximize KL(p(x) ‖ p(x')) from x + 0.001·N, BatchNorm frozen."""
    with eval_mode(model):
        with torch.no_grad():
            clean = F.softmax(model(x), dim=1)
        return perturb(lambda xa: F.kl_div(F.log_softmax(model(xa), dim=1), clean, reduction="sum"), x,
                       start=Start.GAUSSIAN, gen=gen, **recipe_kwargs)


class Trades(Method):
    def loss(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, epoch: int) -> torch.Tensor:
        x_adv = kl_adversarial(self.model, x, recipe_attack(self.recipe), gen)
        natural = self.model(x)
        return F.cross_entropy(natural, y) + self.hp.beta * trades_kl(natural, self.model(x_adv))


DEFENSES.add("trades", Defense(
    name="trades", published=True, surrogate_rank=1,
    summary="TRADES: clean CE + β·KL to the KL-maximizing adversarial example (β = 6)",
    paper="arXiv:1901.08573",
    method=Trades,
    params=TradesParams,
    # Official script: SGD 0.1, wd 2e-4, 76 epochs with a decay at 75, PGD-10 step 0.007.
    recipes=per_cifar(cifar("resnet18", 76, lr=0.1, weight_decay=2e-4, milestones=(75,),
                            attack_rel_step=STEP_0007), fmnist_cpu()),
    variant="official loss, KL inner attack",
))
