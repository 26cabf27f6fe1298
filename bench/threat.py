"""Threat models: the norm, the budget ε, and how ε is parsed and validated."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from fractions import Fraction

from bench.errors import BenchError


class Norm(str, enum.Enum):
    LINF = "linf"
    L2 = "l2"

    @classmethod
    def parse(cls, text: str) -> Norm:
        key = text.strip().lower().replace("∞", "inf")
        aliases = {"linf": cls.LINF, "inf": cls.LINF, "l_inf": cls.LINF, "l2": cls.L2, "2": cls.L2}
        if key not in aliases:
            raise BenchError(f"unknown norm {text!r}: use 'linf' or 'l2'")
        return aliases[key]

    @property
    def autoattack_name(self) -> str:
        return {Norm.LINF: "Linf", Norm.L2: "L2"}[self]


@dataclass(frozen=True)
class ThreatModel:
    norm: Norm
    eps: float

    def __post_init__(self) -> None:
        validate_eps(self.eps)
        if self.norm is Norm.LINF and self.eps > 1:
            raise BenchError(f"invalid ε {self.eps}: an L∞ budget must be in (0, 1] for inputs in [0, 1]")

    def check_fits(self, input_dim: int) -> None:
        """An L2 budget larger than the diameter of the [0,1]^d box (√d) constrains nothing."""
        if self.norm is Norm.L2 and self.eps > input_dim ** 0.5:
            raise BenchError(f"invalid ε {self.eps}: an L2 budget above √d = {input_dim ** 0.5:.2f} (the "
                             "diameter of the input box) allows any image")

    @property
    def label(self) -> str:
        return f"{self.norm.value} eps={format_eps(self.eps)}"


def validate_eps(eps: float) -> float:
    """Finite and positive; the upper bound depends on the norm (see ThreatModel)."""
    if not eps == eps or eps in (float("inf"), float("-inf")):  # NaN or infinite
        raise BenchError(f"invalid ε {eps}: must be a finite positive number")
    if eps <= 0:
        raise BenchError(f"invalid ε {eps}: must be positive")
    return eps


# what an ε may look like: a decimal (exponent allowed) or a ratio of whole numbers, short enough
# that no parse of it can take long or overflow
EPS_TEXT = re.compile(r"-?([0-9]{1,12}(\.[0-9]{0,12})?|\.[0-9]{1,12})([eE][-+]?[0-9]{1,2})?|[0-9]{1,12}/[0-9]{1,12}")


def parse_eps(text: str) -> float:
    """Parse '0.1', '8/255' or '8 / 255' into a positive float."""
    compact = text.replace(" ", "")
    if not EPS_TEXT.fullmatch(compact):
        raise BenchError(f"invalid ε {text[:40]!r}: expected a number such as 0.1 or 8/255")
    try:
        value = float(Fraction(compact))
    except (ValueError, ZeroDivisionError, OverflowError):
        raise BenchError(f"invalid ε {text!r}: expected a finite number such as 0.1 or 8/255") from None
    return validate_eps(value)


def format_eps(eps: float) -> str:
    """Show ε as k/255 when it is one (8/255), else as a short decimal."""
    short = f"{eps:g}"
    k = eps * 255
    if len(short) > 6 and abs(k - round(k)) < 1e-9:
        return f"{round(k)}/255"
    return short


def parse_eps_list(text: str) -> list[float]:
    """'0.05,0.1,8/255' → sorted distinct values; a sweep needs at least two."""
    values = sorted({parse_eps(t) for t in text.split(",") if t.strip()})
    if len(values) < 2:
        raise BenchError(f"--eps-sweep {text!r}: give at least two distinct ε values, e.g. 0.05,0.1,0.2")
    return values
