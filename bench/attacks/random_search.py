"""`noise`: brute-force random search in the ε-ball, the baseline every real attack must beat.

Carlini et al.'s checklist asks that random perturbations with many samples do not find adversarial
examples where the attacks fail: if they do, the attacks are not following useful gradients (the
`noise` check of `bench.auditing.checks`). Half of the draws are uniform in the ball, half on its surface
(L∞: the corners, where random L∞ perturbations are strongest; L2: the sphere), all per example
from the example's own generator, so outcomes do not depend on the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.attacks.base import ATTACKS, Attack, AttackEntry, AttackOutput, Role
from bench.attacks.noise import ball_start, example_generators, normal, uniform
from bench.loading.model import ModelUnderTest
from bench.norms import per_example_l2
from bench.threat import Norm, ThreatModel

CHUNK_IMAGES = 4096  # images per forward
BLOCK = 50  # draws per example between checks of which points are broken


@dataclass(frozen=True)
class NoiseConfig:
    draws: int = 1000

    def __post_init__(self) -> None:
        if self.draws < 2:
            raise ValueError("draws must be at least 2 (half inside the ball, half on its surface)")


def _sphere_then_clipped(norm: Norm, x: torch.Tensor, eps: float, gens: list[torch.Generator]) -> torch.Tensor:
    """A perturbation on the ε-sphere per row (L∞: a corner), then clipped to [0,1] — so it may end
    inside the ball (`bench.auditing.binarization._on_sphere` stays exactly on it)."""
    if norm is Norm.LINF:
        delta = torch.where(uniform(gens, x.shape, x.device) < 0.5, -eps, eps)
    else:
        direction = normal(gens, x.shape, x.device)
        delta = direction / per_example_l2(direction) * eps
    return (x + delta).clamp(0, 1) - x


class RandomNoise(Attack[NoiseConfig]):
    """Draws come in blocks of BLOCK per example (first half inside, second half on the surface),
    each from the example's generator in a fixed order; a point stops after the block that broke
    it, and its adversarial example is the first misclassified draw."""

    batch_independent = True
    forward_only = True

    def run(self, model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor,
            threat: ThreatModel, seed: int) -> AttackOutput:
        gens = example_generators(x, y, seed)
        x_adv, success = x.clone(), torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for start in range(0, self.config.draws, BLOCK):
            todo = (~success).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            k = min(BLOCK, self.config.draws - start)
            half = k // 2
            blocks = []
            for j in todo.tolist():
                rep = x[j].expand(k, *x.shape[1:])
                inside = ball_start(threat.norm, rep[:half], threat.eps, [gens[j]] * half)
                outside = _sphere_then_clipped(threat.norm, rep[half:], threat.eps, [gens[j]] * (k - half))
                blocks.append(rep + torch.cat([inside, outside]))
            candidates = torch.cat(blocks)
            with torch.no_grad():
                predicted = torch.cat([model(candidates[i:i + CHUNK_IMAGES]).argmax(1)
                                       for i in range(0, candidates.shape[0], CHUNK_IMAGES)])
            wrong = (predicted != y[todo].repeat_interleave(k)).view(-1, k)
            hit = wrong.any(1)
            first = wrong.float().argmax(1)
            picked = candidates.view(len(todo), k, *x.shape[1:])[torch.arange(len(todo), device=x.device), first]
            x_adv[todo[hit]] = picked[hit]
            success[todo[hit]] = True
        return AttackOutput(x_adv, success)


ATTACKS.add("noise", AttackEntry(
    "random-noise baseline: 1000 draws per point, half uniform in the ε-ball, half on its surface (L∞ corners); "
    "broken if any draw is misclassified (noise:draws=N)", NoiseConfig, lambda cfg: RandomNoise("noise", 1, cfg),
    roles=frozenset({Role.NOISE_BASELINE})))
