"""Per-example attack losses on logits (summed by the caller, so gradients don't scale with batch)."""

from __future__ import annotations

import enum

import torch
import torch.nn.functional as F

from bench.loading.model import class_margin


class Loss(str, enum.Enum):
    CE = "ce"
    MARGIN = "margin"  # the C&W margin: max_{j≠y} z_j − z_y


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The C&W margin, max_{j≠y} z_j − z_y: positive where the example is misclassified."""
    return -class_margin(logits, y)


def per_example(loss: Loss, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if loss is Loss.CE:
        return F.cross_entropy(logits.float(), y, reduction="none")
    return margin(logits.float(), y)
