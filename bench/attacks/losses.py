"""Per-example attack losses on logits (summed by the caller, so gradients don't scale with batch)."""

from __future__ import annotations

import enum

import torch
import torch.nn.functional as F


class Loss(str, enum.Enum):
    CE = "ce"
    MARGIN = "margin"  # the C&W margin: max_{j≠y} z_j − z_y


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.clone()
    others.scatter_(1, y[:, None], float("-inf"))
    return others.max(1).values - true


def per_example(loss: Loss, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if loss is Loss.CE:
        return F.cross_entropy(logits.float(), y, reduction="none")
    return margin(logits.float(), y)
