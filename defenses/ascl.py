"""ASCL (arXiv:2101.10027): adversarial supervised contrastive learning with sample selection.

Main released configuration (`ascl_pgd_2trans`): two crop+flip views per image, PGD-10 on CE with
the model in train mode (batch statistics, after Pang et al.), a single linear projection head
(d → 128) with L2-normalized output, and the contrastive term on the natural and adversarial
latents with L∞ distances at temperature τ:
    positives P(i) = {j ≠ i: same label and same prediction}
    negatives N(i) = {j: other label but same prediction}     (everything else masked out)
plus 2·KL(p(x) ‖ p(x_adv)) (element-mean, i.e. also divided by the class count, as released)
and CE on x_adv.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from defenses.nets.archs import BACKBONE_NEEDS
from defenses.training.augment import crop_flip
from defenses.training.method import Method, Start, TrainContext, perturb, recipe_attack
from defenses.training.objectives import kl_divergence
from defenses.training.recipes import STEP_0007, cifar, fmnist_cpu, per_cifar
from defenses.training.registry import DEFENSES, Defense, Recipe


@dataclass(frozen=True)
class AsclParams:
    tau: float = 0.2
    contrast_weight: float = 1.0  # "gbcomw"
    kl_weight: float = 2.0  # "lcsmtw"
    natural_ce_weight: float = 0.0  # "alpha" (0 or 1 in the released runs)
    projection_dim: int = 128


def selection_masks(labels: torch.Tensor, preds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(positives, negatives) as boolean matrices: the "leaking" selection of the released code."""
    same_label = labels[:, None] == labels[None, :]
    same_pred = preds[:, None] == preds[None, :]
    not_self = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same_label & same_pred & not_self, ~same_label & same_pred


def selected_contrast(h: torch.Tensor, labels: torch.Tensor, preds: torch.Tensor, tau: float) -> torch.Tensor:
    """mean_i −(1/|P(i)|)·Σ_{j∈P(i)} log softmax_{P(i) ∪ N(i)}(−‖h_i − h_j‖∞ / τ)."""
    positives, negatives = selection_masks(labels, preds)
    sim = -torch.cdist(h, h, p=float("inf")) / tau
    logits = sim.masked_fill(~(positives | negatives), -1e9)
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    per = -(log_prob * positives).sum(1) / positives.sum(1).clamp_min(1)
    return per.mean()


class Ascl(Method):
    def __init__(self, model: nn.Module, recipe: Recipe, hp: AsclParams, ctx: TrainContext) -> None:
        super().__init__(model, recipe, hp, ctx)
        self.projection = nn.Linear(self.linear_head.in_features, hp.projection_dim)

    def loss(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, epoch: int) -> torch.Tensor:
        hp = self.hp
        model = self.backbone
        views = torch.cat([crop_flip(x, gen), crop_flip(x, gen)])
        labels = torch.cat([y, y])
        # Train mode during the attack, as released (BatchNorm uses the batch's statistics).
        x_adv = perturb(lambda xa: F.cross_entropy(model(xa), labels, reduction="sum"), views,
                        start=Start.UNIFORM, gen=gen, **recipe_attack(self.recipe))
        f_nat, f_adv = model.embed(views), model.embed(x_adv)
        nat, adv = model.head(f_nat), model.head(f_adv)
        latents = F.normalize(self.projection(torch.cat([f_nat, f_adv])), dim=1)
        preds = torch.cat([nat.argmax(1), adv.argmax(1)]).detach()
        contrast = selected_contrast(latents, torch.cat([labels, labels]), preds, hp.tau)
        kl = kl_divergence(nat, adv, "sum") / adv.numel()
        total = hp.contrast_weight * contrast + hp.kl_weight * kl + F.cross_entropy(adv, labels)
        if hp.natural_ce_weight:
            total = total + hp.natural_ce_weight * F.cross_entropy(nat, labels)
        return total

    def describe(self) -> dict[str, Any]:
        return {"views": "two crop+flip views per image", "attack_mode": "train (batch statistics)",
                "distance": "L∞ between normalized latents", "selection": "leaking (label and prediction)"}


DEFENSES.add("ascl", Defense(
    name="ascl", published=True, arch_needs=BACKBONE_NEEDS,
    summary="ASCL: supervised contrastive term on natural+adversarial latents with label/prediction selection",
    paper="arXiv:2101.10027",
    method=Ascl,
    params=AsclParams,
    # Released: SGD 0.1, wd 5e-4, batch 128 (×2 views), 120 epochs, ×0.1 at 100, 105 and 110.
    # The two views are the augmentation, so the trainer adds none.
    recipes=per_cifar(cifar("resnet18", 120, lr=0.1, weight_decay=5e-4, milestones=(100, 105, 110),
                            attack_rel_step=STEP_0007, augment=False), fmnist_cpu()),
    variant="ascl_pgd_2trans: leaking selection, L∞ distance, τ = 0.2, 2·KL + adversarial CE",
))
