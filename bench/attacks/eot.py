"""`eot-pgd`: PGD on the expectation over a randomized model's randomness (Athalye et al.'s EOT).

A model that draws noise in its forward pass hands a single-draw attack one noisy gradient per
step, so plain PGD understates what an attacker achieves; each step here averages the loss over
`samples` draws (one batched forward of `samples` copies), and iterates are judged by the mean
logits over those draws; the last iterate is kept when they call it wrong. Whether the final point fools the model is decided as for every attack:
by the harness's verification, which on a randomized model is a majority vote over fresh draws.
On a deterministic model it is PGD with `samples` identical forwards per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.attacks.base import ATTACKS, AttackEntry
from bench.attacks.gradient import PGD, Objective, PGDConfig
from bench.attacks.losses import per_example
from bench.loading.model import ModelUnderTest


@dataclass(frozen=True)
class EOTPGDConfig(PGDConfig):
    samples: int = 10  # draws of the model's randomness averaged per step

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.samples < 1:
            raise ValueError("samples must be at least 1")


class EOTPGD(PGD[EOTPGDConfig]):
    adaptive = True  # the attack a randomized model calls for; counted in the worst case
    prefer_final = True  # the first iterate the mean logits call wrong is often a lucky draw

    def objective(self, model: ModelUnderTest, y: torch.Tensor) -> Objective:
        samples, loss = self.config.samples, self.config.loss

        def expected(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            n = z.shape[0]
            logits = model(z.repeat(samples, *([1] * (z.ndim - 1)))).view(samples, n, -1)
            losses = torch.stack([per_example(loss, logits[s], y) for s in range(samples)]).mean(0)
            return logits.mean(0), losses

        return expected

    def final_logits(self, model: ModelUnderTest, final: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.objective(model, y)(final)[0]


ATTACKS.add("eot-pgd", AttackEntry(
    "adaptive (randomized models): PGD-20 on the loss averaged over 10 draws of the model's randomness per step "
    "(EOT; samples=N, and PGD's parameters)", EOTPGDConfig, lambda cfg: EOTPGD("eot-pgd", 1, cfg)))
