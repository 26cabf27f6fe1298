"""Interval bound propagation (IBP; Gowal et al. 2018): a box through each layer of a chain.

An affine map sends the box (centre c, radius r) to (Lc + b, |L| r); ReLU and max-pooling are
monotone, so they map the box's ends. The last affine map is folded into the margins asked about
(logit of the label minus logit of each other class) before its box is taken, which is what makes
IBP margins usable. Written with torch operations only: the same function gives float64 certificates
and differentiable float32 bounds for certified training.
"""

from __future__ import annotations

import torch

from bench.verifier.network import Affine, Chain, Op, Relu

Box = tuple[torch.Tensor, torch.Tensor]


def margin_spec(labels: torch.Tensor, classes: int, dtype: torch.dtype) -> torch.Tensor:
    """[n, classes − 1, classes]: the rows e_y − e_j for every class j ≠ y, in class order."""
    eye = torch.eye(classes, dtype=dtype, device=labels.device)
    rows = eye[labels][:, None, :] - eye[None, :, :]  # [n, classes, classes]: row j is e_y − e_j
    keep = torch.arange(classes, device=labels.device)[None, :] != labels[:, None]
    return rows[keep].reshape(labels.shape[0], classes - 1, classes)


def input_box(x: torch.Tensor, eps: float) -> Box:
    """The L∞ ball of radius ε around x intersected with the pixel range [0, 1]."""
    return (x - eps).clamp(min=0), (x + eps).clamp(max=1)


def through(op: Op, box: Box) -> Box:
    lo, hi = box
    if isinstance(op, Affine):
        mid = op.apply((lo + hi) / 2)
        rad = op.magnitude((hi - lo) / 2)
        return mid - rad, mid + rad
    if isinstance(op, Relu):
        return lo.clamp(min=0), hi.clamp(min=0)
    return op.windows(lo).amax(dim=-1), op.windows(hi).amax(dim=-1)


def spec_bounds(op: Affine, spec: torch.Tensor, box: Box) -> Box:
    """Bounds on spec · op(x) for x in the box, with the spec folded into the map first."""
    n, s = spec.shape[:2]
    folded = op.transpose(spec.reshape(n * s, *op.out_shape)).reshape(n, s, -1)
    lo, hi = (t.flatten(1)[:, None, :] for t in box)
    mid = (folded * (lo + hi) / 2).sum(-1) + spec.flatten(2) @ op.bias(spec).flatten()
    rad = (folded.abs() * (hi - lo) / 2).sum(-1)
    return mid - rad, mid + rad


def ibp_margins(chain: Chain, box: Box, spec: torch.Tensor) -> torch.Tensor:
    """Lower bounds [n, s] on each margin spec · logits over the box."""
    *body, last = chain.ops
    for op in body:
        box = through(op, box)
    if isinstance(last, Affine):
        return spec_bounds(last, spec, box)[0]
    lo, hi = through(last, box)
    pos, neg = spec.clamp(min=0), spec.clamp(max=0)
    return (pos @ lo[:, :, None] + neg @ hi[:, :, None])[:, :, 0]
