"""Exact robustness of a small ReLU network by mixed-integer programming (Tjeng et al. 2019's encoding).

For each class j ≠ y the smallest margin logit_y − logit_j over the ball is a MILP: the input's box,
each hidden layer's affine map, and per ReLU whose input bounds [l, u] straddle zero a binary δ with
a ≥ 0, a ≥ z, a ≤ z − l(1 − δ), a ≤ uδ (stable ReLUs are linear). The bounds come from CROWN; the
tighter they are, the fewer binaries. SciPy's `milp` (HiGHS) solves it. Outcomes per point:
certified (for every class the MILP with the margin held at most the allowance is infeasible),
refuted (a solution of it, clipped into the ball, is misclassified by the float32 network itself) or
undecided (the time limit, or a minimum too close to zero to settle). Asking whether the margin can
fall below the allowance, not for its exact minimum, lets the solver cut every branch whose relaxation
stays above it; `minimise_margin` computes the exact minimum (the tests compare it with enumeration).
Classes whose CROWN bound already proves them are skipped, the likeliest adversarial class first.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import optimize, sparse

from bench.errors import BenchError
from bench.verifier.intervals import Box
from bench.verifier.network import Affine, Chain, MaxPool, Relu

MAX_DENSE = 4_000_000  # entries of the largest weight matrix the encoding materialises


class Outcome(str, enum.Enum):
    CERTIFIED = "certified"
    REFUTED = "refuted"
    UNDECIDED = "undecided"


@dataclass(frozen=True)
class Dense:
    weight: np.ndarray  # [out, in]
    bias: np.ndarray  # [out]


def dense_layers(chain: Chain) -> list[Dense]:
    """The chain as alternating dense affine maps and ReLUs: [W1, b1], relu, …, [WL, bL]."""
    runs: list[list[Affine]] = [[]]
    for op in chain.ops:
        if isinstance(op, MaxPool):
            raise BenchError(f"milp decides chains of affine layers and ReLUs; layer {op.where} is a max-pool "
                             "(bound it with ibp or crown)")
        if isinstance(op, Relu):
            runs.append([])
        else:
            runs[-1].append(op)
    if any(not run for run in runs):
        raise BenchError("milp needs an affine layer between ReLUs and after the last one")
    return [_dense(run) for run in runs]


def _dense(run: list[Affine]) -> Dense:
    size_in = math.prod(run[0].in_shape)
    size_out = math.prod(run[-1].out_shape)
    if size_in * size_out > MAX_DENSE:
        raise BenchError(f"layer {run[-1].where} as a {size_out}×{size_in} matrix is too large for milp "
                         f"(at most {MAX_DENSE:,} entries): bound this network with ibp or crown")
    basis = torch.eye(size_in, dtype=torch.float64).reshape(size_in, *run[0].in_shape)
    zero = torch.zeros_like(basis[:1])
    with torch.no_grad():
        for op in run:
            basis, zero = op.apply(basis), op.apply(zero)
    bias = zero.flatten()
    return Dense((basis.flatten(1) - bias).T.numpy().copy(), bias.numpy().copy())


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    margin: float  # certified: the proven minimum margin; refuted: the counterexample's; undecided: best lower bound
    seconds: float
    counterexample: np.ndarray | None = None


NpBox = tuple[np.ndarray, np.ndarray]


def _rows(weight: np.ndarray, select: np.ndarray, columns: tuple[int, int, int]) -> sparse.csr_matrix:
    """Rows a_i − W_i·prev for the selected neurons i of a layer; `columns`: where the previous layer's
    variables start, where this layer's start, and how many variables there are in all."""
    prev, own, n_var = columns
    m, h = int(select.sum()), select.size
    eye = sparse.csr_matrix((np.ones(m), (np.arange(m), np.flatnonzero(select))), shape=(m, h))
    return sparse.hstack([sparse.csr_matrix((m, prev)), sparse.csr_matrix(-weight[select]), eye,
                          sparse.csr_matrix((m, n_var - own - h))]).tocsr()


class _Encoding:
    """The constraints shared by every class's MILP for one point."""

    def __init__(self, layers: list[Dense], box: NpBox, pre: list[NpBox]) -> None:
        lo, hi = box
        sizes = [lo.size] + [layer.bias.size for layer in layers[:-1]]
        self.offsets = np.cumsum([0, *sizes])
        unstable = [(low < 0) & (high > 0) for low, high in pre]
        n_bin = int(sum(m.sum() for m in unstable))
        n_var = int(self.offsets[-1]) + n_bin
        var_lo = np.concatenate([lo, *[np.where(high <= 0, 0, np.maximum(low, 0)) for low, high in pre],
                                 np.zeros(n_bin)])
        var_hi = np.concatenate([hi, *[np.maximum(high, 0) for _, high in pre], np.ones(n_bin)])
        self.bounds = optimize.Bounds(var_lo, var_hi)
        self.integrality = np.concatenate([np.zeros(n_var - n_bin), np.ones(n_bin)])
        rows: list[sparse.csr_matrix] = []
        row_lo: list[np.ndarray] = []
        row_hi: list[np.ndarray] = []
        binary = int(self.offsets[-1])
        for k, (layer, (low, high), mask) in enumerate(zip(layers[:-1], pre, unstable, strict=True)):
            columns = (int(self.offsets[k]), int(self.offsets[k + 1]), n_var)
            b = layer.bias
            active = low >= 0
            if active.any():  # a = z
                rows.append(_rows(layer.weight, active, columns))
                row_lo.append(b[active])
                row_hi.append(b[active])
            if mask.any():
                m = int(mask.sum())
                deltas = binary + np.arange(m)
                rows.append(_rows(layer.weight, mask, columns))  # a ≥ z
                row_lo.append(b[mask])
                row_hi.append(np.full(m, np.inf))
                delta = sparse.csr_matrix((-low[mask], (np.arange(m), deltas)), shape=(m, n_var))
                rows.append(_rows(layer.weight, mask, columns) + delta)  # a − z − l·δ ≤ −l
                row_lo.append(np.full(m, -np.inf))
                row_hi.append(b[mask] - low[mask])
                own = columns[1] + np.flatnonzero(mask)
                rows.append(sparse.csr_matrix(  # a − u·δ ≤ 0
                    (np.concatenate([np.ones(m), -high[mask]]),
                     (np.tile(np.arange(m), 2), np.concatenate([own, deltas]))), shape=(m, n_var)))
                row_lo.append(np.full(m, -np.inf))
                row_hi.append(np.zeros(m))
                binary += m
        self.constraints = ([optimize.LinearConstraint(sparse.vstack(rows).tocsr(), np.concatenate(row_lo),
                                                       np.concatenate(row_hi))] if rows else [])
        self.n_var = n_var
        self.last = layers[-1]
        self.input_size = lo.size

    def _objective(self, label: int, other: int) -> tuple[np.ndarray, float]:
        """logit_label − logit_other as c·variables + const."""
        c = np.zeros(self.n_var)
        start = self.offsets[-2]
        c[start:start + self.last.weight.shape[1]] = self.last.weight[label] - self.last.weight[other]
        return c, float(self.last.bias[label] - self.last.bias[other])

    def minimise_margin(self, label: int, other: int, seconds: float) -> tuple[float, float, np.ndarray | None]:
        """(proven lower bound, best value found, its input) of logit_label − logit_other; nan where none."""
        c, const = self._objective(label, other)
        res = optimize.milp(c, integrality=self.integrality, bounds=self.bounds, constraints=self.constraints,
                            options={"time_limit": max(seconds, 0.01), "mip_rel_gap": 1e-9, "disp": False})
        if res.x is None:
            return math.nan, math.nan, None
        proven = getattr(res, "mip_dual_bound", None)
        proven = res.fun if res.status == 0 and proven is None else proven
        lower = math.nan if proven is None or not math.isfinite(proven) else float(proven) + const
        return lower, float(res.fun) + const, res.x[:self.input_size]

    def search_below(self, label: int, other: int, ceiling: float, seconds: float
                     ) -> tuple[bool | None, float, np.ndarray | None]:
        """Whether the margin logit_label − logit_other can be at most `ceiling` in the ball: False when the
        solver proves it cannot (the MILP with that constraint is infeasible), True with the lowest such
        margin found and its input, None at the time limit. Cheaper than the exact minimum: branches whose
        relaxation stays above the ceiling are cut at once."""
        c, const = self._objective(label, other)
        below = optimize.LinearConstraint(sparse.csr_matrix(c[None]), -np.inf, ceiling - const)
        for objective in (np.zeros_like(c), c):  # any point first (the solver stops there), then the lowest
            started = time.perf_counter()
            res = optimize.milp(objective, integrality=self.integrality, bounds=self.bounds,
                                constraints=[*self.constraints, below],
                                options={"time_limit": max(seconds, 0.01), "disp": False})
            seconds -= time.perf_counter() - started
            if res.status == 2:  # infeasible: the margin exceeds the ceiling everywhere in the ball
                return False, math.nan, None
            if res.x is None:
                return None, math.nan, None
            found = float(c @ res.x) + const
            if found < 0 or seconds <= 0:
                break
        return True, found, res.x[:self.input_size]


def tighten(layers: list[Dense], box: NpBox, pre: list[NpBox], seconds: float) -> list[NpBox]:
    """Bounds of each hidden layer after the first, tightened by linear programming: the LP relaxation of
    the encoding of the layers before it, minimised and maximised for each unit the given bounds leave
    unstable (Tjeng et al.'s progressive LP bounds). Tighter bounds mean fewer binaries and a tighter
    relaxation for every later MILP; an LP that does not finish leaves its bound as it was."""
    start = time.perf_counter()
    pre = list(pre)
    for k in range(1, len(layers) - 1):
        enc = _Encoding(layers[:k] + [Dense(np.zeros((1, layers[k].weight.shape[1])), np.zeros(1))], box, pre[:k])
        low, high = pre[k][0].copy(), pre[k][1].copy()
        offset = int(enc.offsets[k])
        relaxed = np.zeros_like(enc.integrality)  # the encoding's LP relaxation
        for i in np.flatnonzero((low < 0) & (high > 0)):
            if time.perf_counter() - start > seconds:
                break
            c = np.zeros(enc.n_var)
            c[offset:offset + layers[k].weight.shape[1]] = layers[k].weight[i]
            for sign in (1.0, -1.0):
                res = optimize.milp(sign * c, integrality=relaxed, bounds=enc.bounds, constraints=enc.constraints,
                                    options={"disp": False})
                if res.status == 0:
                    value = sign * float(res.fun) + layers[k].bias[i]
                    if sign > 0:
                        low[i] = max(low[i], value)
                    else:
                        high[i] = min(high[i], value)
        pre[k] = (low, high)
    return pre


def decide(layers: list[Dense], box: Box, pre: list[Box], label: int, order: list[tuple[float, int]],
           proven: float, seconds: float, allowance: float,
           misclassified: Callable[[np.ndarray], float | None]) -> Decision:
    """One point: `order` lists (CROWN's bound, class) for the classes to refute, likeliest first, the others'
    margins proven to be at least `proven` already; `misclassified(x)` is the float32 network's margin at x
    when it misclassifies x, else None. A class is settled when the margin provably cannot fall to the
    allowance; its proven margin is then the larger of the allowance and CROWN's bound."""
    start = time.perf_counter()
    lo, hi = (t[0].numpy() for t in box)
    flat = (lo.reshape(-1), hi.reshape(-1))
    bounds = tighten(layers, flat, [(pl[0].flatten().numpy(), pu[0].flatten().numpy()) for pl, pu in pre],
                     seconds / 4)
    encoding = _Encoding(layers, flat, bounds)
    for bound, other in order:
        left = seconds - (time.perf_counter() - start)
        if left <= 0:
            return Decision(Outcome.UNDECIDED, min(proven, bound), time.perf_counter() - start)
        possible, found, x = encoding.search_below(label, other, allowance, left)
        if possible is False:
            proven = min(proven, max(bound, allowance))
            continue
        if x is not None and found < 0:
            margin = misclassified(np.clip(x, lo.reshape(-1), hi.reshape(-1)).reshape(lo.shape))
            if margin is not None:
                return Decision(Outcome.REFUTED, margin, time.perf_counter() - start, x.reshape(lo.shape))
        # the time limit, a minimum within the allowance of zero, or a solver point the float32 network
        # classifies correctly: not settled either way
        return Decision(Outcome.UNDECIDED, min(proven, bound), time.perf_counter() - start)
    return Decision(Outcome.CERTIFIED, proven, time.perf_counter() - start)
