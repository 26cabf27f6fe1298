"""Target classes ranked by the linearised distance to each decision boundary (MALT's ranking).

For an example with true class y at a point x, the boundary with class t lies, to first order, at
the L_p distance (z_y − z_t) / ‖∇_x(z_t − z_y)‖_q, with q the dual norm (q = 1 under L∞, 2 under
L2): the margin divided by how fast a perturbation of unit L_p size can close it. Ranking by raw
logits (AutoAttack's order) ignores the second factor; on a model whose logits move at very
different speeds per class the two orders differ, and the targets that break an example sit
further down the logit order (Melamed et al. 2024, arXiv 2407.02240). One backward pass per class
ranks every target of a batch at once.
"""

from __future__ import annotations

import torch

from bench.loading.model import ModelUnderTest
from bench.threat import Norm


def boundary_distances(model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor, norm: Norm) -> torch.Tensor:
    """[n, classes]: the linearised L_p distance from x to the boundary between y and each class
    (the true class gets +inf; a class already ahead of y gets a negative distance)."""
    z = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(z).float()
        grads = torch.stack([torch.autograd.grad(logits[:, c].sum(), z, retain_graph=c + 1 < logits.shape[1])[0]
                             for c in range(logits.shape[1])], dim=1)  # [n, classes, *input]
    logits, grads = logits.detach(), grads.flatten(2)
    gap = logits.gather(1, y[:, None]) - logits
    toward = grads - grads.gather(1, y.view(-1, 1, 1).expand(-1, 1, grads.shape[2]))
    speed = toward.abs().sum(2) if norm is Norm.LINF else toward.norm(dim=2)
    distance = gap / speed.clamp_min(1e-12)
    return distance.scatter(1, y[:, None], float("inf"))


def ranked_targets(model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor, norm: Norm) -> torch.Tensor:
    """[n, classes − 1]: the other classes, nearest boundary first."""
    return boundary_distances(model, x, y, norm).argsort(dim=1)[:, :-1]
