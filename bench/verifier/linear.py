"""CROWN (Zhang et al. 2018): linear bounds carried backwards from the margins to the input.

Each ReLU whose input may change sign is replaced by two lines through its bounds: above, the chord
from (l, 0) to (u, u); below, y = x when u ≥ −l, else y = 0 (the adaptive choice). A max-pool window
is bounded below by its entry with the highest lower bound; above by that entry when it dominates the
window (its lower bound at least every other's upper bound), else by the window's largest upper bound.
Those bounds need each nonlinearity's input bounds: a layer of at most `crown_neurons` units gets
them by CROWN itself (one backward pass per unit), a wider one by IBP (the CROWN-IBP compromise,
since a convolution's tens of thousands of units would each need a pass); where both ran, the tighter
of the two is kept. The margin bound reported is the larger of CROWN's and IBP's: both are sound.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from bench.verifier.intervals import Box, ibp_margins, through
from bench.verifier.network import Affine, Chain, MaxPool, Op, Relu

CROWN_NEURONS = 1024  # widest layer whose input bounds come from CROWN rather than IBP


def relu_relaxation(lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(lower slope, upper slope, upper intercept) of the lines bounding relu on [lo, hi]."""
    active, inactive = lo >= 0, hi <= 0
    unstable = ~active & ~inactive
    width = torch.where(unstable, hi - lo, torch.ones_like(hi))
    upper = torch.where(unstable, hi / width, active.to(hi.dtype))
    intercept = torch.where(unstable, -upper * lo, torch.zeros_like(lo))
    lower = torch.where(unstable, (hi >= -lo).to(hi.dtype), active.to(hi.dtype))
    return lower, upper, intercept


def _flat_sum(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(2).sum(-1)


def backward(ops: tuple[Op, ...], pre: dict[int, Box], a: torch.Tensor, box: Box) -> torch.Tensor:
    """Lower bounds [n, s] on a · f(x) over the box, f the ops in order, a [n, s, *f's output shape];
    `pre[i]` bounds the input of the i-th op for each nonlinearity."""
    n, s = a.shape[:2]
    const = a.new_zeros((n, s))
    for i in reversed(range(len(ops))):
        op = ops[i]
        if isinstance(op, Affine):
            const = const + _flat_sum(a * op.bias(a))
            a = op.transpose(a.reshape(n * s, *op.out_shape)).reshape(n, s, *op.in_shape)
        elif isinstance(op, Relu):
            lower, upper, intercept = relu_relaxation(*pre[i])
            pos, neg = a.clamp(min=0), a.clamp(max=0)
            const = const + _flat_sum(neg * intercept[:, None])
            a = pos * lower[:, None] + neg * upper[:, None]
        else:
            a, extra = _maxpool_back(op, pre[i], a)
            const = const + extra
    lo, hi = box
    centre, radius = ((lo + hi) / 2)[:, None], ((hi - lo) / 2)[:, None]
    return const + _flat_sum(a * centre) - _flat_sum(a.abs() * radius)


def _maxpool_back(op: MaxPool, bounds: Box, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n, s = a.shape[:2]
    wl, wu = (op.windows(t) for t in bounds)
    best_lo, pick = wl.max(dim=-1)
    onehot = F.one_hot(pick, wl.shape[-1]).to(a.dtype)
    others_hi = wu.masked_fill(onehot.bool(), -math.inf).amax(dim=-1)
    dominant = (best_lo >= others_hi).to(a.dtype)[:, None]
    pos, neg = a.clamp(min=0), a.clamp(max=0)
    extra = _flat_sum(neg * (1 - dominant) * wu.amax(dim=-1)[:, None])
    coef = (pos + neg * dominant)[..., None] * onehot[:, None]
    spread = op.unwindow(coef.reshape(n * s, *coef.shape[2:])).reshape(n, s, *op.in_shape)
    return spread, extra


def layer_bounds(chain: Chain, box: Box, crown_neurons: int = CROWN_NEURONS) -> dict[int, Box]:
    """The input bounds of every nonlinearity: IBP, tightened by CROWN on layers of ≤ crown_neurons
    units (only the units IBP leaves unstable: a stable unit's relaxation is already exact)."""
    pre: dict[int, Box] = {}
    current = box
    for i, op in enumerate(chain.ops):
        if not isinstance(op, Affine):
            lo, hi = current
            if math.prod(lo.shape[1:]) <= crown_neurons:
                lo, hi = _tighten(chain.ops[:i], pre, box, lo, hi)
            pre[i] = current = (lo, hi)
        current = through(op, current)
    return pre


def _tighten(ops: tuple[Op, ...], pre: dict[int, Box], box: Box, lo: torch.Tensor, hi: torch.Tensor) -> Box:
    n, shape = lo.shape[0], lo.shape[1:]
    flat_lo, flat_hi = lo.flatten(1), hi.flatten(1)
    unstable = (flat_lo < 0) & (flat_hi > 0)
    k = int(unstable.sum(dim=1).max())
    if k == 0:
        return lo, hi
    units = torch.argsort((~unstable).to(torch.int8), dim=1, stable=True)[:, :k]  # each row's unstable units first
    valid = unstable.gather(1, units)
    rows = lo.new_zeros((n, k, flat_lo.shape[1])).scatter_(2, units[:, :, None], valid[:, :, None].to(lo.dtype))
    bound = backward(ops, pre, torch.cat([rows, -rows], dim=1).reshape(n, 2 * k, *shape), box)
    new_lo = torch.where(valid, torch.maximum(flat_lo.gather(1, units), bound[:, :k]), flat_lo.gather(1, units))
    new_hi = torch.where(valid, torch.minimum(flat_hi.gather(1, units), -bound[:, k:]), flat_hi.gather(1, units))
    return (flat_lo.scatter(1, units, new_lo).reshape(n, *shape), flat_hi.scatter(1, units, new_hi).reshape(n, *shape))


def crown_bounds(chain: Chain, box: Box, spec: torch.Tensor, crown_neurons: int = CROWN_NEURONS
                 ) -> tuple[torch.Tensor, dict[int, Box]]:
    """Lower bounds [n, s] on each margin spec · logits over the box (the better of CROWN and IBP), and
    the nonlinearities' input bounds they rest on (what the exact method encodes)."""
    pre = layer_bounds(chain, box, crown_neurons)
    return torch.maximum(backward(chain.ops, pre, spec, box), ibp_margins(chain, box, spec)), pre
