"""ANCRA's reverse attention (RA): the last stage's blocks re-weight their features by a class row.

For each RA block, with the network's shared linear head (W, b):
    z = readout(block(h));  a = W·pool(z) + b                (auxiliary logits)
    j = label if training with labels, else argmax(a)        (hard, non-differentiable choice)
    h = z ⊙ W[j]                                             (per-channel scale, fed onwards)
The network output is W·pool(h) + b after the last RA block. Training masks with the ground
truth, the deployed model with its own prediction: that asymmetry, and the argmax, are why the
adaptive attacks of docs/design.md (ANCRA, "Inference") exist.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from bench.data import DatasetSpec
from defenses.nets.archs import ARCHS, BACKBONES, Backbone, SmallCNN, global_pool

RA_NEEDS = "a reverse-attention architecture (smallcnn-ra, resnet18-ra)"  # `Defense.arch_needs` of ANCRA


class RAClassifier(nn.Module):
    """A backbone whose last-stage blocks are reverse-attention blocks sharing the head."""

    def __init__(self, net: Backbone) -> None:
        super().__init__()
        self.net = net

    @property
    def head(self) -> nn.Module:
        return self.net.head

    def forward_all(self, x: torch.Tensor, labels: torch.Tensor | None = None,
                    soft_mask: float | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Final logits and the auxiliary logits of every RA block.

        `labels` choose the mask only in train mode (as in training); in eval mode the mask is
        always the predicted class, whatever is passed. `soft_mask=T` (for adaptive attacks)
        leaves every forward value unchanged but sends the backward pass through softmax(a/T)
        instead of the piecewise-constant argmax (a straight-through, BPDA-style estimator).
        """
        head = self.net.head
        assert isinstance(head, nn.Linear), "reverse attention needs a linear head"
        use_labels = labels is not None and self.training
        h = self.net.trunk(x)
        aux = []
        for block in self.net.last_blocks():
            z = self.net.readout(block(h))
            a = head(global_pool(z))
            aux.append(a)
            j = labels if use_labels else a.argmax(1)
            row = head.weight[j]
            if soft_mask is not None and not use_labels:
                soft = torch.softmax(a / soft_mask, dim=1) @ head.weight
                row = row + (soft - soft.detach())
            h = z * row.view(*row.shape, *([1] * (z.dim() - 2)))
        return head(global_pool(h)), aux

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("an RA network's features depend on the mask class; use forward_all")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[0]


def _ra_arch(name: str) -> Callable[[DatasetSpec], nn.Module]:
    """`<name>-ra`: SmallCNN gets BatchNorm in its RA blocks (see `SmallCNN`), others are unchanged."""
    backbone: Callable[[DatasetSpec], Backbone] = BACKBONES[name]
    if name == "smallcnn":
        def backbone(spec: DatasetSpec) -> Backbone:
            return SmallCNN(spec, fc_batchnorm=True)
    return lambda spec: RAClassifier(backbone(spec))


for _name in BACKBONES:
    ARCHS.add(f"{_name}-ra", _ra_arch(_name))
