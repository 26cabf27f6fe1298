"""Randomness drawn per example, so that an example's outcome does not depend on its batch.

Each example gets its own generator, seeded from the run seed and the example itself (its 8-bit
pixel levels and its label, hashed with exact integer arithmetic). The same example then draws the
same random start whether it is attacked alone, in a batch of 500, on another torchrun rank,
after a resume, or only because cheaper attacks of a cascade left it robust — which is what makes
a cascade's and a sharded run's flags identical to a plain run's. Draws happen on the CPU (as
AutoAttack's do), so CPU and CUDA runs start from the same points.
"""

from __future__ import annotations

import torch

from bench.norms import ball_perturbation
from bench.threat import Norm

_MODULUS = 2**61 - 1


def _pixel_weights(dim: int) -> torch.Tensor:
    return torch.randint(1, 2**31, (dim,), generator=torch.Generator().manual_seed(20261121), dtype=torch.int64)


def example_seeds(x: torch.Tensor, y: torch.Tensor, seed: int) -> list[int]:
    """One seed per example from (run seed, pixels, label); exact, so independent of batch shape."""
    levels = (x.detach().flatten(1).cpu().double() * 255).round().to(torch.int64)
    digest = (levels * _pixel_weights(levels.shape[1])).sum(1)  # < 255 · 2^31 · dim: no overflow
    return [(int(d) * 1_000_003 + int(label) * 7919 + seed * 104_729) % _MODULUS
            for d, label in zip(digest.tolist(), y.tolist(), strict=True)]


def example_generators(x: torch.Tensor, y: torch.Tensor, seed: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in example_seeds(x, y, seed)]


def uniform(gens: list[torch.Generator], shape: torch.Size, device: torch.device) -> torch.Tensor:
    """U[0,1) of `shape` (batch first), row i drawn from gens[i]."""
    return torch.stack([torch.rand(shape[1:], generator=g) for g in gens]).to(device)


def normal(gens: list[torch.Generator], shape: torch.Size, device: torch.device) -> torch.Tensor:
    return torch.stack([torch.randn(shape[1:], generator=g) for g in gens]).to(device)


def ball_start(norm: Norm, x: torch.Tensor, eps: float, gens: list[torch.Generator]) -> torch.Tensor:
    """`ball_perturbation` with row i drawn from gens[i]."""
    return ball_perturbation(norm, x, eps, lambda shape: uniform(gens, torch.Size(shape), x.device),
                             lambda shape: normal(gens, torch.Size(shape), x.device))
