"""Binomial confidence intervals for accuracies measured on n test points."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval: well behaved near 0 and 1 and for small n, unlike the normal one."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


def percent_text(value: float, low: float, high: float) -> str:
    """The one way a proportion with its interval is written: `68.5% [61.8, 74.5]`."""
    return f"{100 * value:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"


@dataclass(frozen=True)
class Proportion:
    """k of n points (robust, correct, passed): the shape behind every accuracy the suite reports."""

    count: int
    n: int

    @property
    def value(self) -> float:
        return self.count / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% Wilson interval."""
        return wilson_interval(self.count, self.n)

    @property
    def low(self) -> float:
        return self.interval[0]

    @property
    def high(self) -> float:
        return self.interval[1]

    def text(self) -> str:
        return percent_text(self.value, *self.interval) if self.n else "n/a"

    def __str__(self) -> str:
        return self.text()



def _binomial_pmf(i: int, n: int, p: float) -> float:
    if p <= 0.0 or p >= 1.0:
        return float(i == (0 if p <= 0.0 else n))
    log = math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
    return math.exp(log + i * math.log(p) + (n - i) * math.log1p(-p))


def binomial_tail(k: int, n: int, p: float = 0.5) -> float:
    """P(X ≥ k) for X ~ Binomial(n, p), exactly (in log space, so large n does not overflow)."""
    if k <= 0:
        return 1.0
    return min(1.0, sum(_binomial_pmf(i, n, p) for i in range(k, n + 1)))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar test on paired outcomes: b points robust only on one side, c only on
    the other; the p-value of a split at least this uneven when either side is equally likely."""
    if b + c == 0:
        return 1.0
    return min(1.0, 2 * binomial_tail(max(b, c), b + c, 0.5))


def sign_test_greater(b: int, c: int) -> float:
    """One-sided exact sign (McNemar) test on paired flips: the p-value of "b flips outnumber c
    flips by chance" when either direction is equally likely."""
    return binomial_tail(b, b + c, 0.5)


def binomial_quantile(n: int, p: float, q: float) -> int:
    """The smallest k with P(X ≤ k) ≥ q for X ~ Binomial(n, p)."""
    total = 0.0
    for k in range(n + 1):
        total += _binomial_pmf(k, n, p)
        if total >= q:
            return k
    return n


def kendall_tau(first: Sequence[Hashable], second: Sequence[Hashable]) -> float:
    """Kendall's τ between two strict rankings of the same items (best first): 1 for the same order,
    −1 for the reverse, (concordant − discordant pairs) / all pairs in between."""
    if len(first) != len(set(first)) or set(first) != set(second) or len(first) != len(second):
        raise ValueError("two rankings of the same distinct items are needed")
    if len(first) < 2:
        return float("nan")
    position = {item: i for i, item in enumerate(second)}
    order = [position[item] for item in first]
    pairs = len(order) * (len(order) - 1) // 2
    concordant = sum(order[i] < order[j] for i in range(len(order)) for j in range(i + 1, len(order)))
    return (2 * concordant - pairs) / pairs
