"""Norm-specific pieces of gradient attacks: random start, steepest-ascent step, projection."""

from __future__ import annotations

import torch

from bench.threat import Norm


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.ndim - 1)))


def random_start(norm: Norm, x: torch.Tensor, eps: float, gen: torch.Generator) -> torch.Tensor:
    """A uniform point of the ε-ball (L∞: per coordinate; L2: uniform direction and volume), drawn
    on the generator's device (the same draws wherever x lives) and moved to x's."""
    if norm is Norm.LINF:
        delta = (torch.rand(x.shape, generator=gen, device=gen.device).to(x.device) * 2 - 1) * eps
    else:
        direction = torch.randn(x.shape, generator=gen, device=gen.device).to(x.device)
        dim = x[0].numel()
        radius = torch.rand(x.shape[0], generator=gen, device=gen.device).to(x.device).pow(1.0 / dim) * eps
        delta = direction / _flat_norm(direction) * radius.view(-1, *([1] * (x.ndim - 1)))
    return (x + delta).clamp(0, 1) - x


def ascent_step(norm: Norm, grad: torch.Tensor, size: float) -> torch.Tensor:
    if norm is Norm.LINF:
        return size * grad.sign()
    return size * grad / _flat_norm(grad)


def project(norm: Norm, x: torch.Tensor, delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Back into the ε-ball around x and into [0, 1]; returns the new perturbation."""
    inside = delta.clamp(-eps, eps) if norm is Norm.LINF else delta * (eps / _flat_norm(delta)).clamp(max=1.0)
    return (x + inside).clamp(0, 1) - x


def distance(norm: Norm, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    diff = (a - b).flatten(1)
    return diff.abs().amax(1) if norm is Norm.LINF else diff.norm(dim=1)
