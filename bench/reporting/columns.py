"""What the leaderboard shows per row, defined once: the ranking's columns and the details' items,
each as inline Markdown (`code`, **bold**, [text](link)). `bench.reporting.markdown` writes them as
they are; `bench.reporting.html` converts the same text, escaping everything (`html.inline`), and
sorts numeric columns by their `value`. A new column is one `Column` in `RANKING`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from bench.attacks.base import board_columns
from bench.auditing.report import AuditSummary
from bench.reporting.rows import OFFICIAL, Paired, Row, versus_next

ATTACK_COLUMNS = tuple(board_columns())  # (heading, attack) of the attacks named in the details, in order


@dataclass(frozen=True)
class Ranked:
    """A row where it stands: its rank in its ranking and the row below it (the paired test's partner)."""

    rank: int
    row: Row
    below: Row | None

    @property
    def n(self) -> int:
        """The row's points (its worst case's): cells measured on fewer say `n=`."""
        return self.row.worst.n

    @cached_property
    def versus_next(self) -> Paired | None:
        """The paired test with the row below, once per row (the ranking's text and sort value and the
        details all read it)."""
        return versus_next(self.row, self.below)


def ranked(rows: list[Row]) -> list[Ranked]:
    return [Ranked(rank, row, rows[rank] if rank < len(rows) else None) for rank, row in enumerate(rows, 1)]


@dataclass(frozen=True)
class Column:
    """One column of the ranking. `value` makes it numeric: what the HTML page sorts it by (NaN
    when the row has no number); without one it sorts as text."""

    key: str  # the HTML page's `data-key` (and `#sort=KEY`)
    heading: str
    text: Callable[[Ranked], str]
    value: Callable[[Ranked], float] | None = None
    links_details: bool = False  # the HTML page links the cell to the row's details
    order_bound: bool = False  # describes the row's neighbour in rank order: hidden on a page sorted otherwise


def budget_text(budget: Mapping[str, Any] | None) -> str:
    if not budget:
        return ""
    text = f"{budget['epochs']} ep × {budget['train_points']:,} pts" if budget.get("train_points") else (
        f"{budget['epochs']} ep")
    text += f", PGD-{budget['attack_steps']}" if budget.get("attack_steps") else ", natural"
    if budget.get("init"):
        text += f", from {budget['init']}"
    if budget.get("seconds"):
        text += f" ({budget['seconds']:.0f} s)"
    return text


def checks_text(row: Row) -> str:
    failed = [c.check.label for c in row.checks if not c.passed]
    passed = [c.check.label for c in row.checks if c.passed]
    parts = []
    if failed:
        parts.append("⚠ " + ", ".join(failed))
    if passed:
        parts.append("✓ " + ", ".join(passed))
    return "; ".join(parts) or "not run"


def subset_text(row: Row) -> str:
    """The "subset attacks" cell: each, and what it found beyond the full-set attacks (⚠ if anything)."""
    parts = [f"{'⚠ ' if b.broken else ''}{label} +{b.broken} of {b.of}" for label, b in row.beyond.items()]
    return ", ".join(parts) or "–"


def paired_short(paired: Paired | None) -> str:
    return "–" if paired is None else f"{'yes' if paired.distinguishable else 'no'} (p={paired.p:.2g})"


def paired_long(paired: Paired | None, below: Row | None) -> str:
    if paired is None:
        return "no next row" if below is None else "no shared points with the next row"
    verdict = "distinguishable" if paired.distinguishable else "not distinguishable"
    assert below is not None
    return (f"{verdict} from `{below.label}` (p={paired.p:.2g}, {paired.here}:{paired.there} of "
            f"n={paired.shared})")


def warning_mark(row: Row) -> str:
    """` ⚠` beside a worst case that a failed sanity check puts in doubt (the details say which)."""
    return " ⚠" if any(not c.passed for c in row.checks) else ""


def worst_text(row: Row) -> str:
    lo, hi = row.worst.interval
    return f"**{100 * row.worst.value:.1f}** [{100 * lo:.1f}, {100 * hi:.1f}]{warning_mark(row)}"


def certified_text(row: Row, n: int) -> str:
    """The best certificate's share and method, e.g. `62.3 crown`; `–` where no verifier ran."""
    cert = row.certified
    if cert is None:
        return "–"
    share = cert.proportion
    return f"{100 * share.value:.1f} {cert.method}" + (f" (n={share.n})" if share.n != n else "")


def bracket_text(row: Row) -> str:
    """Where the true robust accuracy lies: at least what is certified, at most the worst case."""
    cert = row.certified
    low = f"{100 * cert.proportion.value:.1f}" if cert else "0"
    exact = " exact" if cert and cert.decides_all and cert.proportion.n == row.worst.n else ""
    return f"[{low}, {100 * row.worst.accuracy:.1f}]{exact}"


def exact_text(r: Ranked) -> str | None:
    """Each attack's robust accuracy beside the exact one, on the points the exact method decided
    (an attack run on fewer points is compared on those, with its count)."""
    row = r.row
    if not row.exact_gaps:
        return None
    cert = next(c for c in row.certificates.values() if c.exact)
    decided = [i for i in cert.certified if cert.certified[i] or cert.refuted[i]]
    truly = sum(cert.certified[i] for i in decided)
    parts = [f"{g.attack} {100 * g.robust / g.shared:.1f}" + (f" of {g.shared}" if g.shared != len(decided) else "")
             + f" (+{len(g.missed)}"
             + (f": #{', #'.join(map(str, g.missed[:5]))}{', …' if len(g.missed) > 5 else ''}" if g.missed else "")
             + ")" for g in row.exact_gaps if g.shared]
    return (f"exact robust accuracy ({cert.method}, {len(decided)} points decided, {cert.undecided} undecided): "
            f"**{100 * truly / max(len(decided), 1):.1f}**; each attack there, with the points it "
            f"leaves robust that are not: {', '.join(parts)}")


def audit_link(audit: AuditSummary) -> str:
    return f"[{audit.verdict}]({audit.folder}/{audit.report})"


def _audit_text(r: Ranked) -> str:
    return audit_link(r.row.audit) if r.row.audit else "not audited"


def _official(r: Ranked) -> float:
    cell = r.row.attacks.get(OFFICIAL)
    return cell.accuracy if cell else math.nan


RANKING = (
    Column("rank", "#", lambda r: str(r.rank), lambda r: r.rank),
    Column("checkpoint", "checkpoint", lambda r: f"`{r.row.label}` {r.row.sha256[:12]}", links_details=True),
    Column("arch", "arch", lambda r: r.row.arch or ""),
    Column("clean", "clean", lambda r: r.row.clean.cell_text(r.n), lambda r: r.row.clean.accuracy),
    Column("autoattack", "AutoAttack",
           lambda r: cell.cell_text(r.n) if (cell := r.row.attacks.get(OFFICIAL)) else "–", _official),
    Column("worst", "worst case [95% CI]", lambda r: worst_text(r.row), lambda r: r.row.worst.accuracy),
    Column("certified", "certified", lambda r: certified_text(r.row, r.n),
           lambda r: cert.proportion.value if (cert := r.row.certified) else math.nan),
    Column("bracket", "true robust ∈", lambda r: bracket_text(r.row)),
    Column("n", "n", lambda r: str(r.n), lambda r: r.n),
    Column("next", "vs next row", lambda r: paired_short(r.versus_next),
           lambda r: paired.p if (paired := r.versus_next) else math.nan, order_bound=True),
    Column("audit", "audit", _audit_text),
)


def _robust_text(r: Ranked) -> str:
    """Every attack's number: the named columns' attacks first, in order, then the others by label."""
    row, named_attacks = r.row, {attack for _, attack in ATTACK_COLUMNS}
    named = [f"{name} {row.attacks[attack].cell_text(r.n)}" for name, attack in ATTACK_COLUMNS if attack in row.attacks]
    others = [f"{label} {cell.cell_text(r.n)}" for label, cell in sorted(row.attacks.items()) if label not in named_attacks]
    return f"robust accuracy (%, n={r.n} unless marked): {', '.join(named + others) or '–'}"


def _curves_text(r: Ranked) -> str:
    links = " · ".join(f"[{text}]({path})" for text, path in r.row.plots)
    return f"audit: {_audit_text(r)}; curves: {links or '–'}"


# the items of a row's details, in order; None: the item does not apply to the row
DETAILS: tuple[Callable[[Ranked], str | None], ...] = (
    lambda r: f"variant: {r.row.variant}" if r.row.variant else None,
    _robust_text,
    lambda r: f"worst case: {worst_text(r.row)} on {r.n} points; attacks on a subset: {subset_text(r.row)}",
    lambda r: (f"certified (lower bounds, `bench certify`): "
               f"{', '.join(f'{m} {100 * c.proportion.value:.1f}' for m, c in r.row.certificates.items())}"
               if r.row.certificates else None),
    exact_text,
    lambda r: f"vs next row: {paired_long(r.versus_next, r.below)}",
    lambda r: f"training budget: {budget_text(r.row.budget) or '–'}; last evaluated {r.row.date[:10]}",
    lambda r: f"sanity checks: {checks_text(r.row)}",
    _curves_text,
    lambda r: f"from an older protocol version: {', '.join(r.row.older)}" if r.row.older else None,
    lambda r: (f"⚠ attacks not run in IEEE fp32, whose numbers may be too high (bf16 attacks were measured to "
               f"miss points fp32 breaks: docs/performance.md): {', '.join(r.row.reduced)}"
               if r.row.reduced else None),
    lambda r: (f"external evaluations (re-verified by `bench verify-adv`): {'; '.join(r.row.external)}"
               if r.row.external else None),
)


def detail_items(r: Ranked) -> list[str]:
    return [text for item in DETAILS if (text := item(r)) is not None]
