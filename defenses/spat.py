"""SPAT (arXiv:2210.15068, AAAI 2023): self-paced hard-class pair reweighting on a cosine classifier.

With c = cos(f, w_j) + b_j (the cosine head, normalized functionally) and scale s:
    natural loss   CE(ĉ, y) with ĉ_y = s·(1 + m − c_y)·c_y and ĉ_j = s·(c_j + m)·c_j (j ≠ y)
    robust loss    (1/B)·Σ_i Σ_j k_ij·(k_ij + n), k_ij = p_ij·(log p_ij − log p'_ij),
                   p = softmax(s·c(x)), p' = softmax(s·c(x'))
    total          natural + β·robust; x' maximizes the robust loss (PGD from x + 0.001·N, eval mode).
The deployed logits are the unscaled cosines (what the authors evaluate); `CosineLinear.scaled`
switches the model to the training scale s, so an evaluation can attack both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from defenses.nets.archs import CosineLinear
from defenses.training.method import Method, Start, TrainContext, eval_mode, perturb, recipe_attack
from defenses.training.recipes import STEP_0007, cifar, fmnist_cpu, per_cifar
from defenses.training.registry import DEFENSES, Defense, Recipe


@dataclass(frozen=True)
class SpatParams:
    scale: float = 8.0  # s
    margin_pos: float = 0.2  # m
    margin_kl: float = 0.2  # n
    beta: float = 6.0


def self_paced_logits(cos: torch.Tensor, y: torch.Tensor, scale: float, m: float) -> torch.Tensor:
    """ĉ: badly fit positives and hard negatives get larger effective weight (not detached)."""
    positive = torch.zeros_like(cos, dtype=torch.bool).scatter(1, y[:, None], True)
    return scale * torch.where(positive, (1 + m - cos) * cos, (cos + m) * cos)


def reweighted_kl(cos_nat: torch.Tensor, cos_adv: torch.Tensor, scale: float, n: float,
                  reduction: str = "mean") -> torch.Tensor:
    """Σ_j k_ij·(k_ij + n) per example; each class term of KL(p ‖ p') weighted by its own size."""
    log_p = F.log_softmax(scale * cos_nat, dim=1)
    log_q = F.log_softmax(scale * cos_adv, dim=1)
    k = log_p.exp() * (log_p - log_q)
    per = (k * (k + n)).sum(1)
    return per.mean() if reduction == "mean" else per.sum()


class Spat(Method):
    def __init__(self, model: nn.Module, recipe: Recipe, hp: SpatParams, ctx: TrainContext) -> None:
        super().__init__(model, recipe, hp, ctx)
        head = getattr(model, "head", None)
        if not isinstance(head, CosineLinear):
            raise TypeError("SPAT needs a cosine-head architecture (e.g. smallcnn-cos, wrn-34-10-cos)")
        with torch.no_grad():
            head.scale.fill_(self.hp.scale)

    def cosines(self, x: torch.Tensor) -> torch.Tensor:
        head = self.backbone.head
        assert isinstance(head, CosineLinear)
        return head.cosine(self.backbone.embed(x))

    def loss(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, epoch: int) -> torch.Tensor:
        hp = self.hp
        with eval_mode(self.model):
            with torch.no_grad():
                clean = self.cosines(x)
            x_adv = perturb(lambda xa: reweighted_kl(clean, self.cosines(xa), hp.scale, hp.margin_kl, "sum"),
                            x, start=Start.GAUSSIAN, gen=gen, **recipe_attack(self.recipe))
        cos_nat = self.cosines(x)
        natural = F.cross_entropy(self_paced_logits(cos_nat, y, hp.scale, hp.margin_pos), y)
        return natural + hp.beta * reweighted_kl(cos_nat, self.cosines(x_adv), hp.scale, hp.margin_kl)

    def describe(self) -> dict[str, Any]:
        return {"deployed_logits": "unscaled cosine + bias (|c| ≲ 1); set CosineLinear.scaled to multiply by s",
                "logit_scale": self.hp.scale}


DEFENSES.add("spat", Defense(
    name="spat", published=True, arch_needs="a cosine-head architecture (smallcnn-cos, wrn-34-10-cos)",
    summary="SPAT: cosine classifier, self-paced natural loss and hard-class-pair reweighted KL (s = 8)",
    paper="arXiv:2210.15068 (AAAI 2023)",
    method=Spat,
    params=SpatParams,
    # Released: WRN-34-10 by default (ResNet-18 provided), SGD 0.1, wd 2e-4, 100 epochs, ×0.1 at 75 and 90.
    recipes=per_cifar(cifar("wrn-34-10-cos", 100, lr=0.1, weight_decay=2e-4, milestones=(75, 90),
                            attack_rel_step=STEP_0007), fmnist_cpu("smallcnn-cos")),
    variant="released loss, functional weight normalization, unscaled deployed logits",
    adaptive_attacks=("spat-scaled",),  # docs/design.md (SPAT): evaluate the s-scaled head too
))
