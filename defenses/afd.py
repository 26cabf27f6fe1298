"""AFD (arXiv:2401.14707, AAAI 2025): adversarial fine-tuning of a natural model by feature disentanglement.

Two identity-initialised, bias-free maps on the penultimate feature f: D1 (intrinsic, used for
classification) and D2 (confused, fed a stop-gradient f). A frozen copy of the natural start is
the teacher. On x_adv (PGD-10 on CE of ω·D1·f):
    L_CE = CE(ω f1, y),  L_dis = α·CE(ω f2, ŷ) with ŷ the most confused wrong class,
    L_elim = β·cos(f1, f2),  L_align = γ·(1 − cos(f1, f_teacher(x))).
Update (the "clean" one of docs/design.md, AFD): D2 learns from L_dis only; backbone, D1 and head
from L_CE + L_align + L_elim; one optimizer each, same SGD settings. The released three-optimizer
update (gradients not zeroed between steps, so some terms are applied twice) is not reproduced.
An EMA of weights and buffers (decay min(0.999, (t+1)/(t+10))) is what is validated and exported,
with D1 folded into the head (ω' = ω·D1): the checkpoint is a plain classifier.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from defenses.nets.archs import BACKBONE_NEEDS, Backbone
from defenses.training.method import Method, Start, TrainContext, eval_mode, perturb, recipe_attack
from defenses.training.recipes import STEP_0007, cifar, fmnist_cpu, per_cifar
from defenses.training.registry import DEFENSES, Defense, Recipe


@dataclass(frozen=True)
class AfdParams:
    alpha: float = 0.05  # L_dis weight
    beta: float = 0.25  # L_elim weight ("sigma" in the code)
    gamma: float = 25.0  # L_align weight
    ema_decay: float = 0.999


def identity_map(dim: int) -> nn.Linear:
    layer = nn.Linear(dim, dim, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(dim))
    return layer


def fold(model: Backbone, d1: nn.Linear) -> Backbone:
    """A copy of `model` whose head computes ω·(D1 f) + b directly."""
    folded = copy.deepcopy(model)
    head = folded.head
    assert isinstance(head, nn.Linear)
    with torch.no_grad():
        head.weight.copy_(head.weight @ d1.weight)
    return folded


class Afd(Method):
    ema_steps: torch.Tensor

    def __init__(self, model: nn.Module, recipe: Recipe, hp: AfdParams, ctx: TrainContext) -> None:
        if ctx.init is None:
            raise ValueError("AFD fine-tunes a natural model: give --init (e.g. standard)")
        model.load_state_dict(ctx.init.state_dict())
        super().__init__(model, recipe, hp, ctx)
        dim = self.linear_head.in_features
        self.d1, self.d2 = identity_map(dim), identity_map(dim)
        teacher = copy.deepcopy(self.backbone)
        teacher.eval()
        teacher.requires_grad_(False)
        self.teacher: Backbone = teacher
        self.ema = nn.ModuleDict({"model": copy.deepcopy(model), "d1": copy.deepcopy(self.d1)}).requires_grad_(False)
        self.register_buffer("ema_steps", torch.zeros((), dtype=torch.long))

    def param_groups(self) -> list[dict[str, Any]]:
        main = [*self.model.parameters(), *self.d1.parameters()]
        return [{"params": main, "name": "backbone+D1+head"}, {"params": list(self.d2.parameters()), "name": "D2"}]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_head(self.d1(self.backbone.embed(x)))

    def loss(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, epoch: int) -> torch.Tensor:
        hp = self.hp
        model, head = self.backbone, self.linear_head
        with eval_mode(self):
            x_adv = perturb(lambda xa: F.cross_entropy(self.logits(xa), y, reduction="sum"), x,
                            start=Start.UNIFORM, gen=gen, **recipe_attack(self.recipe))
        self.teacher.eval()
        with torch.no_grad():
            teacher_f = self.teacher.embed(x)
        f = model.embed(x_adv)
        f1, f2 = self.d1(f), self.d2(f.detach())
        logits1 = head(f1)
        with torch.no_grad():
            confused = logits1.scatter(1, y[:, None], float("-inf")).argmax(1)
        # D2 only learns from L_dis: the head enters it detached.
        l_dis = hp.alpha * F.cross_entropy(F.linear(f2, head.weight.detach(), head.bias.detach()), confused)
        l_elim = hp.beta * F.cosine_similarity(f1, f2.detach(), dim=1).mean()
        l_align = hp.gamma * (1 - F.cosine_similarity(f1, teacher_f, dim=1)).mean()
        return F.cross_entropy(logits1, y) + l_align + l_elim + l_dis

    @torch.no_grad()
    def after_step(self) -> None:
        t = int(self.ema_steps)
        decay = min(self.hp.ema_decay, (t + 1) / (t + 10))
        live = {**{f"model.{k}": v for k, v in self.model.state_dict().items()},
                **{f"d1.{k}": v for k, v in self.d1.state_dict().items()}}
        for name, avg in self.ema.state_dict().items():
            if avg.dtype.is_floating_point:
                avg.mul_(decay).add_(live[name], alpha=1 - decay)
            else:
                avg.copy_(live[name])
        self.ema_steps += 1

    def deployed(self) -> nn.Module:
        return fold(self.ema["model"], self.ema["d1"])  # type: ignore[arg-type]

    def describe(self) -> dict[str, Any]:
        return {"update": "clean two-optimizer: D2 on L_dis; backbone, D1 and head on L_CE + L_align + L_elim",
                "exported": "EMA weights with D1 folded into the head (plain classifier)",
                "init_sha256": self.ctx.init_sha256}


DEFENSES.add("afd", Defense(
    name="afd", published=True, arch_needs=BACKBONE_NEEDS,
    summary="AFD: adversarial fine-tuning of a natural model with feature disentanglers, teacher and EMA",
    paper="arXiv:2401.14707 (AAAI 2025)",
    method=Afd,
    params=AfdParams,
    # 20 epochs, lr 0.025 (1-10), 0.02 at 11, then halved at 13, 15, 17 and 19; wd 5e-4.
    recipes=per_cifar(cifar("resnet18", 20, lr=0.025, weight_decay=5e-4, milestones=(10, 12, 14, 16, 18),
                            lr_factors=(0.8, 0.4, 0.2, 0.1, 0.05), attack_rel_step=STEP_0007, init="standard"),
                      fmnist_cpu(lr=0.025, init="standard")),
    variant="clean two-optimizer update, EMA export with D1 folded",
))
