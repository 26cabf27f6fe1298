"""PNG plots for the leaderboard, byte-identical for the same records and matplotlib version.

Determinism: the Agg backend, fixed figure size and dpi, no "Software" metadata in the PNG,
sorted inputs, and file names that are functions of the checkpoint label and threat model.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

from bench.records.curves import Curve  # noqa: E402
from bench.stats import wilson_interval  # noqa: E402

FIGSIZE = (6.0, 4.0)
DPI = 100


def _errors(curve: Curve) -> tuple[list[float], list[float]]:
    low, high = [], []
    for p in curve.points:
        lo, hi = wilson_interval(p.count, p.n)
        low.append(100 * (p.accuracy - lo))
        high.append(100 * (hi - p.accuracy))
    return low, high


def _png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def _axes(title: str, xlabel: str) -> tuple[plt.Figure, plt.Axes]:
    with plt.rc_context({"font.size": 9}):
        fig, ax = plt.subplots(figsize=FIGSIZE)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("robust accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.grid(True, alpha=0.3)
    return fig, ax


def curve_plot(curves: Sequence[tuple[str, Curve]], title: str, xlabel: str, *, log_x: bool = False,
               ceiling: tuple[float, float, str] | None = None) -> bytes:
    """One line per (legend, curve) with 95% Wilson error bars; `ceiling` = (from x, y%, label)
    draws a bound no classifier can beat (the ε at which every input reaches the same image)."""
    fig, ax = _axes(title, xlabel)
    palette = [f"C{i}" for i in range(10)]  # the default cycle, with linestyles beyond ten lines
    for i, (legend, curve) in enumerate(curves):
        xs = [p.x for p in curve.points]
        ax.errorbar(xs, [100 * p.accuracy for p in curve.points], yerr=_errors(curve), marker="os^"[i // 10 % 3],
                    markersize=3, capsize=2, linewidth=1.2, linestyle=("-", "--", ":")[i // 10 % 3],
                    color=palette[i % 10], label=legend)
    if ceiling is not None:
        start, level, label = ceiling
        ax.axvline(start, color="grey", linestyle=":", linewidth=1)
        ax.axhline(level, color="grey", linestyle="--", linewidth=1, label=label)
    if log_x:
        ax.set_xscale("log")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return _png(fig)

