"""2×2 max pooling with nn.MaxPool2d(2)'s values, several times faster on CPU where no gradient is taken.

torch's CPU max-pooling kernel is slow in the NCHW layout: one thread, a [65, 32, 24, 24] batch,
13.4 ms, where the elementwise maximum of the four strided quarter-grids takes 2.2 ms
(`python benchmarks/pooling.py` measures both, and SmallCNN with either). The two pools were a
third of SmallCNN's forward time in Square's query loop. Pooling selects and never computes, so the
maximum of the quarter-grids has the stock kernel's values bit for bit (NaN propagates in both).
Where autograd records a graph the stock kernel runs: its backward needs the argmax indices, and
every faster way to get them that we measured (a channels-last copy, masks in the backward) made
SmallCNN's forward + backward slower, not faster. Off CPU the stock kernel runs too, and so does
anything that captures the module (torch.jit.trace or script, torch.export, torch.compile): a
captured graph must not depend on whether a gradient was asked for.
"""

from __future__ import annotations

import torch
from torch import nn

from bench.verifier.network import same_as


def quarter_grids(x: torch.Tensor) -> list[torch.Tensor]:
    """The four strided views of `x` ([n, c, h, w]) holding each 2×2 window's entries, in window
    order; a last odd row or column is dropped, as pooling with floor rounding drops it."""
    h, w = x.shape[2] // 2 * 2, x.shape[3] // 2 * 2
    x = x[:, :, :h, :w]
    return [x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2]]


def max_pool_values(x: torch.Tensor) -> torch.Tensor:
    a, b, c, d = quarter_grids(x)
    top = torch.maximum(a, b)
    return torch.maximum(top, torch.maximum(c, d), out=top)


class MaxPool2x2(nn.MaxPool2d):
    """nn.MaxPool2d(2), computed as above on CPU. No parameters or buffers: state dicts and
    checkpoints are those of nn.MaxPool2d(2)."""

    def __init__(self) -> None:
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        needs_graph = torch.is_grad_enabled() and x.requires_grad
        captured = torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting()
        if needs_graph or captured or x.device.type != "cpu" or x.dim() != 4:
            return super().forward(x)
        return max_pool_values(x)


same_as(MaxPool2x2, nn.MaxPool2d)  # the verifier bounds it as the stock 2×2 max-pool it equals
