"""Certify test points: per point, certified robust, refuted, or neither, by one method.

Every method computes in float64 from the network's float32 weights; a point counts as certified
only when its proven margin (logit of the label minus every other logit, over the whole ball)
exceeds `ALLOWANCE` = 1e-4. Float64 rounding in these networks is below 1e-10, and the float32
network that attacks run differs from the exact function by about 1e-5 at most, so a certificate
holds for the network the attacks see, not only for its real-arithmetic idealisation. A point the
float32 network misclassifies is refuted by itself, by every method.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bench.errors import BenchError, did_you_mean
from bench.loading.model import class_margin
from bench.verifier.exact import Decision, Dense, Outcome, decide, dense_layers
from bench.verifier.intervals import ibp_margins, input_box, margin_spec
from bench.verifier.linear import CROWN_NEURONS, crown_bounds
from bench.verifier.network import Chain, check_equivalent

ALLOWANCE = 1e-4
TIME_LIMIT = 60.0  # seconds per point for milp


class Method(str, enum.Enum):
    IBP = "ibp"
    CROWN = "crown"
    MILP = "milp"

    @property
    def exact(self) -> bool:
        """Decides robustness (certified or refuted) rather than bounding it from one side."""
        return self is Method.MILP

    @classmethod
    def parse_list(cls, text: str | Sequence[str]) -> tuple[Method, ...]:
        """`ibp,crown` (or a list of names) as methods, in the order given, each once."""
        names = [t.strip().lower() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
        known = [m.value for m in cls]
        for name in names:
            if name not in known:
                raise BenchError(f"unknown certification method {name!r}.{did_you_mean(name, known)} "
                                 f"Available: {', '.join(known)}")
        if not names:
            raise BenchError(f"name at least one certification method ({', '.join(known)})")
        return tuple(dict.fromkeys(cls(n) for n in names))

    @property
    def proves(self) -> str:
        return {Method.IBP: "interval bounds, layer by layer",
                Method.CROWN: "linear bounds carried back from the margins (CROWN), IBP where layers are wide",
                Method.MILP: "the exact minimum margin, by mixed-integer programming (HiGHS)"}[self]


@dataclass(frozen=True)
class Certificate:
    method: Method
    certified: np.ndarray  # bool [n]: no point of the ball is misclassified (proven)
    refuted: np.ndarray  # bool [n]: a misclassified point of the ball was found (verified in float32)
    margins: np.ndarray  # float [n]: certified: the proven minimum margin; refuted: the found point's margin
    seconds: float
    config: dict[str, float]

    @property
    def undecided(self) -> np.ndarray:
        return ~(self.certified | self.refuted)


def certify_points(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, method: Method, *,
                   batch_size: int = 16, time_limit: float = TIME_LIMIT,
                   crown_neurons: int = CROWN_NEURONS,
                   progress: Callable[[int], None] | None = None) -> Certificate:
    """`model` maps [0, 1] pixels to logits; the L∞ ball of radius `eps` (within [0, 1]) around each point."""
    start = time.perf_counter()
    model = model.eval()
    chain = Chain.of(model, tuple(x.shape[1:]))
    check_equivalent(model, chain, x[:64])
    layers = dense_layers(chain) if method.exact else None
    with torch.no_grad():
        clean = class_margin(model(x), y)
    n = x.shape[0]
    certified, refuted = np.zeros(n, dtype=bool), (clean <= 0).numpy()
    margins = clean.double().numpy().copy()
    todo = np.flatnonzero(~refuted)
    classes = chain.out_shape[0]
    for begin in range(0, todo.size, batch_size):
        idx = todo[begin:begin + batch_size]
        box = input_box(x[idx].double(), eps)
        with torch.no_grad():
            if layers is not None:  # exact: point by point
                for j, i in enumerate(idx.tolist()):
                    one = (box[0][j:j + 1], box[1][j:j + 1])
                    decision = _exact(chain, layers, one, model, int(y[i]), time_limit, crown_neurons)
                    certified[i] = decision.outcome is Outcome.CERTIFIED
                    refuted[i] = decision.outcome is Outcome.REFUTED
                    margins[i] = decision.margin
            else:
                spec = margin_spec(y[idx], classes, torch.float64)
                bound = (ibp_margins(chain, box, spec) if method is Method.IBP
                         else crown_bounds(chain, box, spec, crown_neurons)[0])
                lowest = bound.min(dim=1).values.numpy()
                certified[idx], margins[idx] = lowest > ALLOWANCE, lowest
        if progress is not None:
            progress(min(begin + batch_size, todo.size))
    config = {"allowance": ALLOWANCE, **({"crown_neurons": crown_neurons} if method is not Method.IBP else {}),
              **({"time_limit": time_limit} if method.exact else {})}
    return Certificate(method, certified, refuted, margins, time.perf_counter() - start, config)


SEARCH_STEPS, SEARCH_STARTS = 50, 4


def search_counterexample(model: nn.Module, box: tuple[torch.Tensor, torch.Tensor], label: int) -> np.ndarray | None:
    """A misclassified point of the box found by projected sign-gradient descent on the true-class margin
    (from the centre and random starts), or None. It only shortens refutations, which stand on the float32
    network's own output at the point, whoever found it; certification is the solver's alone."""
    lo, hi = (t.float() for t in box)
    gen = torch.Generator().manual_seed(label)
    starts = torch.cat([(lo + hi) / 2, lo + (hi - lo) * torch.rand((SEARCH_STARTS - 1, *lo.shape[1:]), generator=gen)])
    step = float((hi - lo).max()) / 8
    x = starts.clone().requires_grad_(True)
    labels = torch.full((x.shape[0],), label)
    for _ in range(SEARCH_STEPS):
        with torch.enable_grad():  # the caller bounds under no_grad
            margin = class_margin(model(x), labels)
            grad, = torch.autograd.grad(margin.sum(), x)
        if bool((margin < 0).any()):
            break
        x = torch.min(torch.max(x.detach() - step * grad.sign(), lo), hi).requires_grad_(True)
    with torch.no_grad():
        margin = class_margin(model(x), labels)
    worst = int(margin.argmin())
    return x[worst:worst + 1].detach().double().numpy() if float(margin[worst]) < 0 else None


def _exact(chain: Chain, layers: list[Dense], box: tuple[torch.Tensor, torch.Tensor], model: nn.Module, label: int,
           time_limit: float, crown_neurons: int) -> Decision:
    classes = chain.out_shape[0]
    bounds, pre = crown_bounds(chain, box, margin_spec(torch.tensor([label]), classes, torch.float64), crown_neurons)
    bound = bounds[0]
    others = [j for j in range(classes) if j != label]
    open_ = sorted((float(b), j) for b, j in zip(bound.tolist(), others, strict=True) if b <= ALLOWANCE)
    proven = min((b for b in bound.tolist() if b > ALLOWANCE), default=math.inf)

    def misclassified(point: np.ndarray) -> float | None:
        with torch.no_grad():
            m = float(class_margin(model(torch.from_numpy(point).float()[None]), torch.tensor([label]))[0])
        return m if m <= 0 else None

    if open_:
        found = search_counterexample(model, box, label)
        if found is not None and (margin := misclassified(found)) is not None:
            return Decision(Outcome.REFUTED, margin, 0.0, found)
    return decide(layers, box, [pre[i] for i in sorted(pre)], label, open_, proven, time_limit,
                  ALLOWANCE, misclassified)
