"""Norm-specific pieces of attacks: ε-ball points, steepest-ascent step, projection, distance.

(APGD keeps its own projection: it follows the official AutoAttack's arithmetic to the bit.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from bench.threat import Norm

Draw = Callable[[tuple[int, ...]], torch.Tensor]  # random numbers of a shape, on x's device


def per_example_l2(t: torch.Tensor) -> torch.Tensor:
    """Each example's L2 norm (never below 1e-12), shaped to broadcast over the example."""
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.ndim - 1)))


def ball_perturbation(norm: Norm, x: torch.Tensor, eps: float, uniform: Draw, normal: Draw) -> torch.Tensor:
    """A uniform point of the ε-ball per example (L∞: per coordinate; L2: uniform direction and
    volume), clipped to [0, 1]; returns the perturbation. The caller's `uniform` and `normal` decide
    the random stream (one generator for the batch, or one per example)."""
    if norm is Norm.LINF:
        delta = (uniform(tuple(x.shape)) * 2 - 1) * eps
    else:
        direction = normal(tuple(x.shape))
        radius = uniform((x.shape[0],)).pow(1.0 / x[0].numel()) * eps
        delta = direction / per_example_l2(direction) * radius.view(-1, *([1] * (x.ndim - 1)))
    return (x + delta).clamp(0, 1) - x


def random_start(norm: Norm, x: torch.Tensor, eps: float, gen: torch.Generator) -> torch.Tensor:
    """`ball_perturbation` from one generator, drawn on its device (the same draws wherever x lives)."""
    return ball_perturbation(
        norm, x, eps, lambda shape: torch.rand(shape, generator=gen, device=gen.device).to(x.device),
        lambda shape: torch.randn(shape, generator=gen, device=gen.device).to(x.device))


def ascent_step(norm: Norm, grad: torch.Tensor, size: float) -> torch.Tensor:
    if norm is Norm.LINF:
        return size * grad.sign()
    return size * grad / per_example_l2(grad)


def project(norm: Norm, x: torch.Tensor, delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Back into the ε-ball around x and into [0, 1]; returns the new perturbation."""
    inside = delta.clamp(-eps, eps) if norm is Norm.LINF else delta * (eps / per_example_l2(delta)).clamp(max=1.0)
    return (x + inside).clamp(0, 1) - x


def distance(norm: Norm, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    diff = (a - b).flatten(1)
    return diff.abs().amax(1) if norm is Norm.LINF else diff.norm(dim=1)
