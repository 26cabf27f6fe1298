"""CLAF (arXiv:2203.08959, ICMLC 2022): the adversarial example as an extra positive in SupCon.

Encoder (the backbone up to its penultimate features) + MLP projection head (d → d → ReLU → 128)
+ linear head, in three stages over the recipe's epochs:
  1. `aug_epochs`: SupCon (τ = 0.07) over two strong views.
  2. middle epochs: per batch, x_adv = PGD on encoder + current head (eval mode, uniform start);
     the head takes one Adam step on x_adv's (detached) features, then encoder + projection take
     an SGD step on SupCon over {strong view, strong view, x_adv}.
  3. `linear_epochs`: a freshly initialized head trained with Adam on clean inputs, encoder frozen.
Only stage-3 epochs can be selected. Differences from the released code, on purpose: attacks run
in [0,1] pixel space with normalization inside the model (the released code attacks normalized
tensors, so its ε is ≈ 1.6/255 in pixels and its clamp erases every below-mean pixel); the head is
refreshed once per batch on the encoder's own adversarial batch instead of 5 separate epochs per
epoch; the encoder is frozen in eval mode in stage 3 (no BatchNorm drift); strong views are
crop + flip + brightness/contrast jitter (no colour jitter or resized crop on grayscale data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench import distributed
from defenses.nets.archs import BACKBONE_NEEDS
from defenses.training.augment import crop_flip
from defenses.training.method import Method, Start, TrainContext, eval_mode, perturb, recipe_attack
from defenses.training.objectives import supcon
from defenses.training.recipes import FMNIST_EPOCHS, cifar, fmnist_cpu, per_cifar
from defenses.training.registry import DEFENSES, Defense, Recipe, Schedule


@dataclass(frozen=True)
class ClafParams:
    aug_epochs: int = 60  # stage 1
    linear_epochs: int = 100  # stage 3
    temperature: float = 0.07
    head_lr: float = 1e-3  # Adam, for the head in stages 2 and 3
    projection_dim: int = 128


def strong_view(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Crop + flip, then with p = 0.8 brightness and contrast factors in [0.6, 1.4]."""
    out = crop_flip(x, gen)
    n = x.shape[0]
    shape = (n, *([1] * (x.dim() - 1)))
    jitter = (torch.rand(n, generator=gen) < 0.8).view(shape).to(x.device)
    bright = (0.6 + 0.8 * torch.rand(n, generator=gen)).view(shape).to(x.device)
    contrast = (0.6 + 0.8 * torch.rand(n, generator=gen)).view(shape).to(x.device)
    mean = out.mean(dim=tuple(range(1, x.dim())), keepdim=True)
    jittered = ((out * bright - mean) * contrast + mean).clamp(0, 1)
    return torch.where(jitter, jittered, out)


class Claf(Method):
    def __init__(self, model: nn.Module, recipe: Recipe, hp: ClafParams, ctx: TrainContext) -> None:
        super().__init__(model, recipe, hp, ctx)
        if hp.aug_epochs + hp.linear_epochs >= recipe.epochs:
            raise ValueError(f"CLAF needs more epochs ({recipe.epochs}) than aug_epochs + linear_epochs "
                             f"({hp.aug_epochs} + {hp.linear_epochs}) to have an adversarial stage")
        head = self.linear_head
        dim = head.in_features
        self.projection = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, hp.projection_dim))
        self.aux_optimizers["head"] = torch.optim.Adam(head.parameters(), lr=hp.head_lr)

    def stage(self, epoch: int) -> int:
        if epoch < self.hp.aug_epochs:
            return 1
        return 3 if epoch >= self.recipe.epochs - self.hp.linear_epochs else 2

    def before_epoch(self, epoch: int) -> None:
        if epoch == self.recipe.epochs - self.hp.linear_epochs:  # stage 3 starts: a fresh head
            head = self.linear_head
            gen = torch.Generator().manual_seed(self.recipe.seed + 7)
            with torch.no_grad():
                bound = 1 / head.in_features ** 0.5
                head.weight.copy_(torch.rand(head.weight.shape, generator=gen) * 2 * bound - bound)
                head.bias.copy_(torch.rand(head.bias.shape, generator=gen) * 2 * bound - bound)
            self.aux_optimizers["head"] = torch.optim.Adam(head.parameters(), lr=self.hp.head_lr)

    def selectable(self, epoch: int) -> bool:
        return self.stage(epoch) == 3

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projection(self.backbone.embed(x)), dim=1)

    def _head_step(self, features: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        head_loss = F.cross_entropy(self.linear_head(features.detach()), y)
        optimizer = self.aux_optimizers["head"]
        optimizer.zero_grad(set_to_none=True)
        head_loss.backward()
        distributed.average_gradients(self.linear_head.parameters())
        optimizer.step()
        return head_loss.detach()

    def loss(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, epoch: int) -> torch.Tensor:
        model = self.backbone
        stage = self.stage(epoch)
        if stage == 3:
            with eval_mode(model), torch.no_grad():
                features = model.embed(x)
            return self._head_step(features, y)
        views = [strong_view(x, gen), strong_view(x, gen)]
        if stage == 2:
            with eval_mode(model):
                x_adv = perturb(lambda xa: F.cross_entropy(model(xa), y, reduction="sum"), x,
                                start=Start.UNIFORM, gen=gen, **recipe_attack(self.recipe))
                with torch.no_grad():
                    adv_features = model.embed(x_adv)
            self._head_step(adv_features, y)
            views.append(x_adv)
        return supcon(torch.stack([self.latents(v) for v in views], dim=1), y, self.hp.temperature)

    def describe(self) -> dict[str, Any]:
        return {"stages": {"contrastive_warmup": self.hp.aug_epochs, "linear_readout": self.hp.linear_epochs},
                "threat_space": "[0,1] pixels, normalization inside the model (released code: normalized space)",
                "head_refresh": "one Adam step per batch on that batch's adversarial features"}


DEFENSES.add("claf", Defense(
    name="claf", published=True, arch_needs=BACKBONE_NEEDS,
    summary="CLAF: SupCon with the adversarial example as an extra positive, head kept in sync, linear read-out",
    paper="arXiv:2203.08959 (ICMLC 2022)",
    method=Claf,
    params=ClafParams,
    # Released: SGD lr 0.05, no momentum, wd 1e-4, batch 256, cosine; 60 + 140 epochs, then 100 linear
    # epochs; PGD-5 at 8/255, step 2/255. The views are the augmentation.
    recipes=per_cifar(
        cifar("resnet18", 300, batch_size=256, lr=0.05, momentum=0.0, weight_decay=1e-4, schedule=Schedule.COSINE,
              attack_steps=5, attack_rel_step=0.25, params={"aug_epochs": 60, "linear_epochs": 100}),
        # Budget rule: 3 adversarial epochs, plus one warm-up and one read-out epoch without attacks.
        fmnist_cpu(epochs=FMNIST_EPOCHS + 2, milestones=(FMNIST_EPOCHS,), momentum=0.0, weight_decay=1e-4,
                   params={"aug_epochs": 1, "linear_epochs": 1})),
    variant="pixel-space threat model (normalization bug fixed), per-batch head refresh",
))
