"""Hand-built models on which one adaptive attack must succeed while the standard attacks fail.

Both live on Fashion-MNIST-shaped inputs around the gray image and move a single direction
g(x) = u·(x − 0.5) with |u|₁ = 1, so an L∞ attack of ε = 0.1 can shift g by at most 0.1 while a
random start moves it by ~0.002: only an attacker who follows the right gradient gets there.
"""

from __future__ import annotations

import torch
from torch import nn

SHAPE = (1, 28, 28)
CLASSES = 10


def _direction() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    signs = torch.randint(0, 2, SHAPE, generator=gen).float() * 2 - 1
    return signs / signs.numel()


def gray_points(n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = 0.5 + 0.01 * (torch.rand((n, *SHAPE), generator=gen) * 2 - 1)
    return x, torch.zeros(n, dtype=torch.long)


class HardMaskNet(nn.Module):
    """Reverse-attention interface in miniature: the output is 10·onehot(argmax aux), so its
    gradient is zero; class 0 wins while g < 0.025. `soft_mask` routes the backward pass through
    softmax(aux/T) with unchanged forward values, as `RAClassifier` does."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("u", _direction())
        self.anchor = nn.Parameter(torch.zeros(()))  # so the model has a parameter and a device

    def forward_all(self, x: torch.Tensor, labels: torch.Tensor | None = None,
                    soft_mask: float | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        g = ((x - 0.5) * self.u).flatten(1).sum(1)
        aux = torch.full((x.shape[0], CLASSES), -1.0, device=x.device) + self.anchor
        aux = torch.cat([(0.05 - g)[:, None] * 10, (g * 10)[:, None], aux[:, 2:]], dim=1)
        mask = torch.nn.functional.one_hot(aux.argmax(1), CLASSES).float()
        if soft_mask is not None:
            soft = torch.softmax(aux / soft_mask, dim=1)
            mask = mask + (soft - soft.detach())
        return 10 * mask + 0.0 * aux, [aux]  # in the graph, with a zero gradient

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[0]


class ScaledHead(nn.Module):
    scale: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(8.0))
        self.scaled = False

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.scale if self.scaled else z


class TinyLogitNet(nn.Module):
    """Unscaled logits z0 = 0.3, z1 = 0.25 + g, z2..9 = 0.1 − g/4: with softmax near uniform, CE
    pushes g down (eight classes gain a little) and never reaches z1 > z0 (needs g > 0.05); at
    scale 8 the softmax concentrates on class 1 and CE pushes g up, across the boundary."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("u", _direction())
        self.anchor = nn.Parameter(torch.zeros(()))
        self.head = ScaledHead()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = ((x - 0.5) * self.u).flatten(1).sum(1)[:, None] + self.anchor
        z = torch.cat([torch.full_like(g, 0.3), 0.25 + g, (0.1 - g / 4).expand(-1, CLASSES - 2)], dim=1)
        return self.head(z)
