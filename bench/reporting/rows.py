"""The leaderboard's rows: a pure function of the run records and audits.

One table per dataset × threat model (ε) that has evaluation records. A row is a checkpoint
(sha256); each attack column takes the newest record of that checkpoint with the attack in its
default configuration; the worst case is taken over all those attacks on the points every one
of them evaluated. Rows are sorted by worst-case robust accuracy. Sanity checks (bench.auditing.checks)
mark rows; nothing is hidden. What a row shows is defined once in `bench.reporting.columns`, and
rendered by `bench.reporting.markdown` and `bench.reporting.html`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bench.attacks.base import Role, current_protocol, has_role, sole_attack
from bench.auditing import checks as sanity
from bench.auditing.report import AuditSummary
from bench.data import DATASETS
from bench.records.certificates import (
    Certified,
    ExactGap,
    best,
    certificates,
    exact_gaps,
    refuse_contradictions,
)
from bench.records.curves import class_share, eps_curves, strength_curves
from bench.records.run_record import RunRecord
from bench.records.schema import RunPurpose
from bench.reporting import plots
from bench.reporting.text import markdown_text, safe_href
from bench.stats import Proportion, mcnemar_exact
from defenses.training.registry import BUDGETS

# the official AutoAttack and our cheaper protocol, compared per row
OFFICIAL, FAST = sole_attack(Role.OFFICIAL_AUTOATTACK), sole_attack(Role.FAST_AUTOATTACK)
NORM_SYMBOL = {"linf": "L∞", "l2": "L2"}


@dataclass(frozen=True)
class Cell(Proportion):
    """A board cell: its number alone when measured on the row's `n`, else with its own `n=`."""

    @property
    def accuracy(self) -> float:
        return self.value

    def cell_text(self, worst_n: int) -> str:
        value = f"{100 * self.accuracy:.1f}"
        return value if self.n == worst_n else f"{value} (n={self.n})"


@dataclass(frozen=True)
class Beyond:
    """An attack run on a subset of the row's points: how many of them it broke that the attacks run
    on every point had left robust."""

    broken: int
    of: int


@dataclass(frozen=True)
class Disagreement:
    """Per example on the points two attacks share: test indices only the first broke, and how
    many only the second broke."""

    shared: int
    only_first: list[int]
    only_second: int


def disagreement(first: dict[int, bool], second: dict[int, bool]) -> Disagreement:
    shared = sorted(first.keys() & second.keys())
    return Disagreement(len(shared), [i for i in shared if second[i] and not first[i]],
                        sum(first[i] and not second[i] for i in shared))


@dataclass
class Row:
    label: str
    sha256: str
    path: str
    defense: str | None
    variant: str | None
    arch: str | None
    budget: Mapping[str, Any] | None
    date: str
    clean: Cell
    attacks: dict[str, Cell]
    worst: Cell
    worst_flags: dict[int, bool]  # test-set index → robust under every attack that ran on it
    official_vs_fast: Disagreement | None  # the official AutoAttack against aa-fast, where both ran
    beyond: dict[str, Beyond]  # attacks run on a subset of the row's points
    checks: list[sanity.CheckResult]
    plots: list[tuple[str, str]] = field(default_factory=list)  # (link text, path relative to results/)
    audit: AuditSummary | None = None  # the newest `bench audit` summary of this checkpoint and threat
    external: list[str] = field(default_factory=list)  # external evaluations: label, file, sha256, source
    older: list[str] = field(default_factory=list)  # "label (protocol; now current)" for numbers from older versions
    reduced: list[str] = field(default_factory=list)  # "label (bf16)" for numbers from attacks not run in IEEE fp32
    certificates: dict[str, Certified] = field(default_factory=dict)  # by verification method (`bench certify`)
    exact_gaps: list[ExactGap] = field(default_factory=list)  # each attack against an exact decision, when one ran
    attack_flags: dict[str, dict[int, bool]] = field(default_factory=dict)  # attack label → test index → robust
    sources: dict[str, str] = field(default_factory=dict)  # attack label → the record file its number comes from

    @property
    def certified(self) -> Certified | None:
        """The best certificate: the lower end of the bracket the true robust accuracy lies in."""
        return best(self.certificates)


TableKey = tuple[str, str, float]  # dataset, norm, ε


def _newest_first(records: list[RunRecord]) -> list[RunRecord]:
    return sorted(records, key=lambda r: r.order, reverse=True)


def _choose(records: list[RunRecord]) -> sanity.Chosen:
    """Attack label (default configuration, adaptive, external) → the record that ran it on the most points, the
    newest among those (the same checkpoint and protocol: more points is strictly more evidence)."""
    chosen: sanity.Chosen = {}
    for r in _newest_first(records):
        for label, res in r.attacks.items():
            # the default configuration, an adaptive attack, or an external evaluation (verify-adv)
            counted = label == res.attack or res.adaptive or has_role(res.attack, Role.EXTERNAL)
            if counted and (label not in chosen or r.n > chosen[label].n):
                chosen[label] = r
    return chosen


def _headline(chosen: sanity.Chosen) -> tuple[dict[int, bool], dict[str, Beyond]]:
    """The headline worst case, per test-set index of the row's full evaluation set (the points of
    its largest record): robust only if every attack that ran on that point failed. Attacks that
    ran on fewer points (the official AutoAttack or adaptive attacks on a subset) count where they
    ran; for each, how many of its points it broke that the full-set attacks had left robust."""
    if not chosen:
        return {}, {}
    full = set(max(chosen.values(), key=lambda r: r.n).index.tolist())
    inside = {label for label, r in chosen.items() if full <= set(r.index.tolist())}
    robust = {i: True for i in sorted(full)}
    for label in sorted(inside):
        for i, flag in chosen[label].flags_by_index(label).items():
            if i in robust:
                robust[i] = robust[i] and flag
    beyond = {}
    subset_flags = {label: chosen[label].flags_by_index(label) for label in sorted(chosen.keys() - inside)}
    for label, flags in subset_flags.items():
        shared = [i for i in flags if i in robust]
        beyond[label] = Beyond(sum(robust[i] and not flags[i] for i in shared), len(shared))
    for flags in subset_flags.values():
        for i, flag in flags.items():
            if i in robust:
                robust[i] = robust[i] and flag
    return robust, beyond


def _external_text(label: str, config: Mapping[str, Any]) -> str:
    """Where an external evaluation's adversarial examples come from (`bench verify-adv`)."""
    source = config.get("source")
    href = safe_href(str(source))
    where = f"[{source}]({source})" if href is not None and urlsplit(href).scheme else markdown_text(str(source))
    return (f"`{label}` from `{config.get('file')}` (sha256 {str(config.get('sha256'))[:12]})"
            + (f", source {where}" if source else ""))


def _older_protocols(chosen: sanity.Chosen) -> list[str]:
    """The attacks whose number comes from a record of an earlier version of the attack than the
    one registered today: still valid under their protocol name, but not what a rerun would run."""
    older = []
    for label, r in sorted(chosen.items()):
        res = r.attacks[label]
        now = current_protocol(res.attack)
        if now is not None and res.protocol != now:
            older.append(f"{label} ({res.protocol}; now {now})")
    return older


def _reduced_arithmetic(chosen: sanity.Chosen) -> list[str]:
    """The attacks whose number comes from a run in other arithmetic than eager IEEE fp32: its
    successes were verified in fp32, but bf16 attacks were measured to miss points fp32 breaks
    (docs/performance.md), so such a number may be too high."""
    reduced = []
    for label, r in sorted(chosen.items()):
        prov = r.provenance
        if prov.precision != "fp32" or prov.compile:
            reduced.append(f"{label} ({prov.precision}{', compiled' if prov.compile else ''})")
    return reduced


def _row(sha: str, table_records: list[RunRecord], all_records: list[RunRecord], key: TableKey) -> Row:
    dataset, norm, eps = key
    chosen = _choose(table_records)
    newest = _newest_first(table_records)[0]
    largest = max(_newest_first(table_records), key=lambda r: r.n)
    attacks = {label: Cell(r.attacks[label].robust.count, r.n) for label, r in chosen.items()}
    clean = Cell(largest.clean.count, largest.n)
    spec = DATASETS.get(dataset)
    model = newest.model
    checks = sanity.record_checks(all_records, chosen, norm, eps, math.prod(spec.shape))
    checks += [c for c in (sanity.adaptive_ran(chosen, dataset, model.defense),) if c is not None]
    worst, beyond = _headline(chosen)
    certs = certificates(table_records)
    attack_flags = {label: r.flags_by_index(label) for label, r in sorted(chosen.items())}
    refuse_contradictions(certs, attack_flags, f"{model.label} ({sha[:12]})")
    exact = next((c for c in certs.values() if c.exact), None)
    official_vs_fast = (disagreement(chosen[OFFICIAL].flags_by_index(OFFICIAL), chosen[FAST].flags_by_index(FAST))
                        if OFFICIAL in chosen and FAST in chosen else None)
    external = [_external_text(label, r.attacks[label].config) for label, r in sorted(chosen.items())
                if has_role(r.attacks[label].attack, Role.EXTERNAL)]
    return Row(label=model.label, sha256=sha, path=model.path, defense=model.defense,
               variant=model.variant, arch=model.arch, budget=model.training_budget,
               date=newest.provenance.date, clean=clean, attacks=attacks,
               worst=Cell(sum(worst.values()), len(worst)), worst_flags=worst, beyond=beyond,
               official_vs_fast=official_vs_fast, checks=checks, external=external, older=_older_protocols(chosen),
               reduced=_reduced_arithmetic(chosen),
               certificates=certs,
               exact_gaps=exact_gaps(exact, {**attack_flags, "worst case": worst}) if exact else [],
               attack_flags=attack_flags, sources={label: r.file or "" for label, r in sorted(chosen.items())})


def build_rows(records: list[RunRecord]) -> tuple[dict[TableKey, list[Row]], dict[TableKey, list[Row]]]:
    """(current rows, superseded rows) per table. A checkpoint is superseded when a newer
    checkpoint at the same path has records in the same table."""
    by_sha: dict[str, list[RunRecord]] = {}
    for r in records:
        by_sha.setdefault(r.model.sha256, []).append(r)
    tables: dict[TableKey, dict[str, list[RunRecord]]] = {}
    for r in records:
        if r.purpose is RunPurpose.EVALUATION:
            key = (r.dataset, r.threat.norm.value, r.threat.eps)
            tables.setdefault(key, {}).setdefault(r.model.sha256, []).append(r)
    current: dict[TableKey, list[Row]] = {}
    superseded: dict[TableKey, list[Row]] = {}
    for key in sorted(tables):
        rows = [_row(sha, recs, by_sha[sha], key) for sha, recs in sorted(tables[key].items())]
        newest_at: dict[str, str] = {}
        for row in rows:
            newest_at[row.path] = max(newest_at.get(row.path, ""), row.date)
        order = sorted(rows, key=lambda row: (-row.worst.accuracy, row.label, row.sha256))
        current[key] = [row for row in order if row.date == newest_at[row.path]]
        superseded[key] = [row for row in order if row.date != newest_at[row.path]]
    return current, superseded


def budget_order() -> list[str]:
    """The registered training budgets, the larger first (they answer how robust a recipe makes a
    network), the recipes last."""
    larger_first = sorted(BUDGETS.items(), key=lambda item: (item[1].epoch_factor, item[1].all_points), reverse=True)
    return [name for name, _ in larger_first]


def by_budget(rows: list[Row]) -> dict[str, list[Row]]:
    """Rows per training budget (`bench train --budget`), in `budget_order`, ranked apart."""
    groups: dict[str, list[Row]] = {name: [] for name in budget_order()}
    for row in rows:
        groups.setdefault((row.budget or {}).get("name") or "recipe", []).append(row)
    return {name: group for name, group in groups.items() if group}


def budget_heading(budget: str, groups: dict[str, list[Row]]) -> str | None:
    """The heading above a budget's ranking: none when the recipes are all there is."""
    if list(groups) == ["recipe"]:
        return None
    summary = f": {BUDGETS.get(budget).summary}" if budget in BUDGETS else ""
    return f"Training budget `{budget}`{summary}"


@dataclass(frozen=True)
class Paired:
    """An exact McNemar test on the worst-case flags of the points two rows both evaluated:
    `here` robust only in the upper row, `there` only in the lower one."""

    here: int
    there: int
    shared: int
    p: float

    @property
    def distinguishable(self) -> bool:
        return self.p < 0.05


def paired_flags(upper: dict[int, bool], lower: dict[int, bool]) -> Paired | None:
    """An exact McNemar test on two sets of per-point robust flags, on the points both have (None: none)."""
    shared = upper.keys() & lower.keys()
    if not shared:
        return None
    b = sum(upper[i] and not lower[i] for i in shared)
    c = sum(lower[i] and not upper[i] for i in shared)
    return Paired(b, c, len(shared), mcnemar_exact(b, c))


def paired(upper: Row, lower: Row) -> Paired | None:
    """An exact McNemar test on the worst-case flags of the points both rows evaluated (None: none)."""
    return paired_flags(upper.worst_flags, lower.worst_flags)


def versus_next(row: Row, below: Row | None) -> Paired | None:
    """Whether this row's worst case differs from the next row's beyond chance (None: no next
    row, or no shared points)."""
    return None if below is None else paired(row, below)


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in text)


def overview_plot(key: TableKey) -> str:
    """Where a table's all-checkpoints ε plot is (relative to results/), when it has one."""
    dataset, norm, _ = key
    return f"plots/{_slug(dataset)}-{norm}-eps-all.png"


def _plots(key: TableKey, rows: list[Row], records: list[RunRecord]) -> dict[str, bytes]:
    """Plot files (path relative to results/) for one table; also fills each row's links."""
    dataset, norm, eps = key
    spec = DATASETS.get(dataset)
    bound = sanity.collapse_eps(norm, math.prod(spec.shape))
    files: dict[str, bytes] = {}
    overview = []
    for row in rows:
        mine = [r for r in records if r.model.sha256 == row.sha256]
        curves = eps_curves(mine, norm)
        if curves:
            share = class_share(curves[0].points[-1].record)
            name = f"plots/{_slug(dataset)}-{norm}-{_slug(row.label)}-eps.png"
            files[name] = plots.curve_plot(
                [(c.attack, c) for c in curves], f"{row.label} ({row.sha256[:12]}) on {dataset}: robust accuracy vs ε",
                f"{NORM_SYMBOL[norm]} ε", ceiling=(bound, 100 * share, f"largest class share ({100 * share:.0f}%)"))
            row.plots.append(("ε", name))
            overview += [(row.label, c) for c in curves if has_role(c.attack, Role.CURVE_REFERENCE)]
        ladders = strength_curves(mine, norm, eps)
        if ladders:
            name = f"plots/{_slug(dataset)}-{norm}-{eps:g}-{_slug(row.label)}-strength.png"
            files[name] = plots.curve_plot(
                [(f"{c.attack} {c.detail}" if len(ladders) > 1 else c.attack, c) for c in ladders],
                f"{row.label} on {dataset}, ε={eps:g}: robust accuracy vs attack strength", "steps × restarts",
                log_x=True)
            row.plots.append(("steps", name))
    if len(overview) > 1:
        files[overview_plot(key)] = plots.curve_plot(overview, f"PGD robust accuracy vs ε, {dataset}", f"{NORM_SYMBOL[norm]} ε")
    return files


AUDIT_ONLY_CHECKS = (sanity.Check.AUTOATTACK_PROBE, sanity.Check.GRADIENTS, sanity.Check.ADAPTIVE,
                     sanity.Check.BINARIZATION)


def attach_audits(rows: list[Row], key: TableKey, audits: list[AuditSummary]) -> None:
    """The newest audit of each row's checkpoint under this threat model: its verdict, and the
    checks only an audit can make (model probes, adaptive gap) join the row's sanity checks."""
    dataset, norm, eps = key
    for row in rows:
        mine = [a for a in audits if a.sha256 == row.sha256 and a.dataset == dataset
                and a.threat.norm.value == norm and a.threat.eps == eps]
        if not mine:
            continue
        row.audit = newest = mine[-1]
        row.checks += [c for c in newest.checks if c.check in AUDIT_ONLY_CHECKS]


@dataclass
class Board:
    """Everything a leaderboard page shows, rendered by `render` (markdown) or `bench.reporting.html`."""

    records: int
    current: dict[TableKey, list[Row]]  # rows with audits attached and plot links filled
    superseded: dict[TableKey, list[Row]]
    files: dict[str, bytes]  # plot path relative to results/ → PNG bytes


def prepare(records: list[RunRecord], audits: list[AuditSummary] | None = None) -> Board:
    """The rows of every table, with audits (oldest first) and plots."""
    current, superseded = build_rows(records)
    files: dict[str, bytes] = {}
    for key, rows in current.items():
        attach_audits(rows, key, audits or [])
        files.update(_plots(key, rows, records))
    return Board(len(records), current, superseded, files)
