"""IBP certified training (Gowal et al. 2018): cross-entropy on the worst-case logits that interval
bounds allow over the ε-ball, mixed with the clean cross-entropy.

Training starts clean (ε = 0, κ = 1); then, step by step, ε rises linearly to the recipe's ε and the
clean weight κ falls to `final_kappa`. Without the ramp the bounds of an untrained network are so
loose that the robust term swamps learning. The bounds are the verifier's own (`bench.verifier`), on
the live float32 parameters, so what training tightens is exactly what `bench certify` proves, and
the checkpoint is selected by its held-out IBP-certified accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.verifier.intervals import ibp_margins, input_box, margin_spec
from bench.verifier.network import Chain
from defenses.training.method import Method, TrainContext
from defenses.training.registry import DEFENSES, Defense, Recipe


@dataclass(frozen=True)
class IbpParams:
    warmup_epochs: int = 1  # clean training first
    ramp_epochs: int = 10  # then ε: 0 → the recipe's ε and κ: 1 → final_kappa, linearly per step
    final_kappa: float = 0.5  # weight of the clean loss after the ramp (the bound's weight is 1 − κ)


def worst_case_logits(lower_margins: torch.Tensor) -> torch.Tensor:
    """Logits, label first, that are as bad as the margin bounds allow: 0 for the label and −bound
    for every other class, so that cross-entropy against class 0 is IBP's robust loss."""
    return torch.cat([lower_margins.new_zeros(lower_margins.shape[0], 1), -lower_margins], dim=1)


class IBP(Method):
    steps: torch.Tensor

    def __init__(self, model: nn.Module, recipe: Recipe, hp: IbpParams, ctx: TrainContext) -> None:
        super().__init__(model, recipe, hp, ctx)
        if ctx.steps_per_epoch <= 0:
            raise ValueError("IBP's ε ramp needs the number of steps per epoch")
        if recipe.eps <= 0:
            raise ValueError("IBP trains against a threat: give it an ε > 0")
        Chain.of(model, ctx.spec.shape, dtype=None)  # refuse a network the bounds cannot pass now, not mid-run
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))  # saved with the resume state

    def ramp(self) -> float:
        """How far the schedule has come: 0 during the warm-up, 1 once ε is at its target."""
        ramped = int(self.steps) / self.ctx.steps_per_epoch - self.hp.warmup_epochs  # epochs since the warm-up
        if ramped < 0:
            return 0.0
        return 1.0 if self.hp.ramp_epochs == 0 else min(ramped / self.hp.ramp_epochs, 1.0)

    def loss(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, epoch: int) -> torch.Tensor:
        clean = F.cross_entropy(self.model(x), y)
        progress = self.ramp()
        if progress == 0:
            return clean
        chain = Chain.of(self.model, tuple(x.shape[1:]), dtype=None)
        lower = ibp_margins(chain, input_box(x, progress * self.recipe.eps),
                            margin_spec(y, self.ctx.spec.num_classes, x.dtype))
        robust = F.cross_entropy(worst_case_logits(lower), torch.zeros_like(y))
        kappa = 1 - progress * (1 - self.hp.final_kappa)
        return kappa * clean + (1 - kappa) * robust

    def after_step(self) -> None:
        self.steps += 1

    def selectable(self, epoch: int) -> bool:
        return epoch + 1 >= self.hp.warmup_epochs + self.hp.ramp_epochs

    def describe(self) -> dict[str, Any]:
        return {"bounds": "interval bound propagation (bench.verifier.intervals), float32, live parameters",
                "schedule": f"{self.hp.warmup_epochs} clean epoch(s), then ε and κ ramped linearly per step over "
                            f"{self.hp.ramp_epochs} epochs to ε = {self.recipe.eps}, κ = {self.hp.final_kappa}"}


DEFENSES.add("ibp", Defense(
    name="ibp", published=True,
    summary="IBP certified training: clean CE mixed with CE on interval-bound worst-case logits, ε ramped",
    paper="arXiv:1810.12715",
    method=IBP,
    params=IbpParams,
    recipes={
        # Certified training is not under the adversarial budget rule (its inner "attack" is a bound, one
        # forward pass, not ten): every training point, trained until the held-out certified accuracy stops rising.
        "fashion-mnist": Recipe(arch="dm-small", epochs=40, batch_size=64, lr=0.05, momentum=0.9, weight_decay=0.0,
                                milestones=(30, 36), eps=0.1,
                                params={"warmup_epochs": 2, "ramp_epochs": 15}),
    },
    variant="IBP loss of Gowal et al. with an ε/κ ramp, trained with our SGD trainer",
    selection_metric="certified",
))
