"""`results/LEADERBOARD.md` and its plots: a pure function of the run records.

One table per dataset × threat model (ε) that has evaluation records. A row is a checkpoint
(sha256); each attack column takes the newest record of that checkpoint with the attack in its
default configuration; the worst case is taken over all those attacks on the points every one
of them evaluated. Rows are sorted by worst-case robust accuracy. Sanity checks (bench.auditing.checks)
mark rows; nothing is hidden. Regenerating from the same records gives the same bytes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tabulate import tabulate

from bench.attacks.base import Role, board_columns, current_protocol, has_role, sole_attack
from bench.auditing import checks as sanity
from bench.auditing.report import AuditSummary
from bench.data import DATASETS
from bench.files import write_if_changed
from bench.records.curves import class_share, eps_curves, strength_curves
from bench.records.run_record import RunRecord
from bench.records.schema import SCHEMA_VERSION, RunPurpose
from bench.reporting import plots
from bench.stats import Proportion, kendall_tau, mcnemar_exact
from defenses.training.registry import BUDGETS

COLUMNS = tuple(board_columns())  # (heading, attack) of the attacks with a column of their own
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


MAX_URL = 2000
RELATIVE_URL = re.compile(r"(?![a-z][a-z0-9+.-]*:)[A-Za-z0-9_.][A-Za-z0-9_./-]*(#[A-Za-z0-9_-]+)?|#[A-Za-z0-9_-]+")


def safe_href(url: str) -> str | None:
    """The address a link may have: an absolute http(s) URL, or a relative one inside the board's own
    folder tree (letters, digits, `_ . / -` and a `#fragment`). Anything else — `javascript:`,
    `data:`, a scheme-relative `//host`, whitespace, quotes, brackets that would end a Markdown
    link — is refused."""
    if len(url) > MAX_URL or any(c.isspace() or ord(c) < 32 or c in "\"'<>\\`()[]|" for c in url):
        return None
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        return url if parts.hostname else None
    return url if RELATIVE_URL.fullmatch(url) else None


def markdown_text(text: str) -> str:
    """Text from a file, shown as itself in Markdown: no link, emphasis, code or HTML it could form."""
    return re.sub(r"([\\`*_\[\]()<>|#!])", r"\\\1", " ".join(text.split()))


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


def _row(sha: str, table_records: list[RunRecord], all_records: list[RunRecord], key: TableKey) -> Row:
    dataset, norm, eps = key
    chosen = _choose(table_records)
    newest = _newest_first(table_records)[0]
    largest = max(_newest_first(table_records), key=lambda r: r.n)
    attacks = {label: Cell(r.attacks[label].robust.count, r.n) for label, r in chosen.items()}
    clean = Cell(largest.clean.count, largest.n)
    spec = DATASETS.get(dataset)
    checks = sanity.record_checks(all_records, chosen, norm, eps, math.prod(spec.shape))
    model = newest.model
    worst, beyond = _headline(chosen)
    official_vs_fast = (disagreement(chosen[OFFICIAL].flags_by_index(OFFICIAL), chosen[FAST].flags_by_index(FAST))
                        if OFFICIAL in chosen and FAST in chosen else None)
    external = [_external_text(label, r.attacks[label].config) for label, r in sorted(chosen.items())
                if has_role(r.attacks[label].attack, Role.EXTERNAL)]
    return Row(label=model.label, sha256=sha, path=model.path, defense=model.defense,
               variant=model.variant, arch=model.arch, budget=model.training_budget,
               date=newest.provenance.date, clean=clean, attacks=attacks,
               worst=Cell(sum(worst.values()), len(worst)), worst_flags=worst, beyond=beyond,
               official_vs_fast=official_vs_fast, checks=checks, external=external, older=_older_protocols(chosen))


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


def by_budget(rows: list[Row]) -> dict[str, list[Row]]:
    """Rows per training budget, ranked apart (`bench train --budget`): the larger registered
    budgets first (they answer how robust a recipe makes a network), the recipes last."""
    larger_first = sorted(BUDGETS.items(), key=lambda item: (item[1].epoch_factor, item[1].all_points), reverse=True)
    groups: dict[str, list[Row]] = {name: [] for name, _ in larger_first}
    for row in rows:
        groups.setdefault((row.budget or {}).get("name") or "recipe", []).append(row)
    return {name: group for name, group in groups.items() if group}


def budget_heading(budget: str, groups: dict[str, list[Row]]) -> str | None:
    """The heading above a budget's ranking: none when the recipes are all there is."""
    if list(groups) == ["recipe"]:
        return None
    summary = f": {BUDGETS.get(budget).summary}" if budget in BUDGETS else ""
    return f"Training budget `{budget}`{summary}"


def paired(upper: Row, lower: Row) -> Paired | None:
    """An exact McNemar test on the worst-case flags of the points both rows evaluated (None: none)."""
    shared = upper.worst_flags.keys() & lower.worst_flags.keys()
    if not shared:
        return None
    b = sum(upper.worst_flags[i] and not lower.worst_flags[i] for i in shared)
    c = sum(lower.worst_flags[i] and not upper.worst_flags[i] for i in shared)
    return Paired(b, c, len(shared), mcnemar_exact(b, c))


def budget_comparison(groups: dict[str, list[Row]]) -> list[str]:
    """Per larger budget: each defense's change from its recipe checkpoint, on the points both were
    evaluated on (exact McNemar), and Kendall's τ between the two rankings of the defenses in both."""
    recipe = {row.defense: row for row in groups.get("recipe", []) if row.defense}
    parts = []
    for budget, rows in groups.items():
        both = [row for row in rows if budget != "recipe" and row.defense in recipe]
        if not both:
            continue
        body = []
        for row in both:
            assert row.defense is not None
            base = recipe[row.defense]
            test = paired(row, base)
            if test is None:
                body.append([f"`{row.defense}`", "–", "–", "–", "no shared points", "–"])
                continue
            shared = row.worst_flags.keys() & base.worst_flags.keys()
            now, before = (100 * sum(r.worst_flags[i] for i in shared) / len(shared) for r in (row, base))
            body.append([f"`{row.defense}`", f"{before:.1f}", f"{now:.1f}", f"{now - before:+.1f}",
                         f"{test.here}:{test.there} of {test.shared}", f"{test.p:.2g}"])
        ranked_here = [row.defense for row in both]
        ranked_there = [row.defense for row in groups["recipe"] if row.defense in set(ranked_here)]
        tau = (f" Kendall's τ between the two rankings of these {len(both)} defenses: "
               f"{kendall_tau(ranked_here, ranked_there):.2f}." if len(both) > 1 else "")
        parts += [f"Recipe → `{budget}` budget, per defense: worst case on the points both checkpoints were "
                  f"evaluated on, the points robust only under `{budget}` : only under the recipe, and an exact "
                  f"McNemar test.{tau}\n",
                  markdown_table(body, ["defense", "recipe %", f"{budget} %", "change", "flips", "p"]) + "\n"]
    return parts


def checks_text(row: Row) -> str:
    failed = [c.check.label for c in row.checks if not c.passed]
    passed = [c.check.label for c in row.checks if c.passed]
    parts = []
    if failed:
        parts.append("⚠ " + ", ".join(failed))
    if passed:
        parts.append("✓ " + ", ".join(passed))
    return "; ".join(parts) or "not run"


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in text)


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
        name = f"plots/{_slug(dataset)}-{norm}-eps-all.png"
        files[name] = plots.curve_plot(overview, f"PGD robust accuracy vs ε, {dataset}", f"{NORM_SYMBOL[norm]} ε")
    return files


def _audit_link(audit: AuditSummary) -> str:
    return f"[{audit.verdict}](audits/{audit.report})"


def _pct_pair(count: Proportion | None) -> str:
    return f"{100 * count.value:.1f}" if count and count.n else "–"


def _binarization_cell(audit: AuditSummary) -> str:
    """Each binarization attack's tasks passed, e.g. `pgd 100/100, apgd 99/100`; audits from before
    the test say so."""
    if audit.binarization is None:
        return "not run"
    if not audit.binarization:
        return "n/a"
    return ", ".join(f"{label} {a.passed}/{a.tasks}" + (" ✗" if a.fails_test else "")
                     for label, a in audit.binarization.items())


def _audit_table(rows: list[Row]) -> str:
    """Standard vs adaptive, per audited checkpoint, on the audit's own points."""
    body = []
    for row in rows:
        if row.audit is None:
            continue
        audit = row.audit
        worst = audit.worst_case
        adaptive = ", ".join(f"{label} {_pct_pair(count)}" for label, count in audit.adaptive.items())
        body.append([f"`{row.label}`", audit.n, _pct_pair(audit.standard.get(OFFICIAL)),
                     _pct_pair(worst["standard"]), adaptive or "–", _pct_pair(worst["adaptive"]),
                     f"**{_pct_pair(worst['audit'])}**", _binarization_cell(audit), _audit_link(audit)])
    headers = ["checkpoint", "n", "AutoAttack", "standard worst case", "adaptive attacks", "adaptive worst case",
               "audit worst case", "binarization test", "verdict"]
    return markdown_table(body, headers) if body else ""


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


def versus_next(row: Row, below: Row | None) -> Paired | None:
    """Whether this row's worst case differs from the next row's beyond chance (None: no next
    row, or no shared points)."""
    return None if below is None else paired(row, below)


def paired_short(paired: Paired | None) -> str:
    return "–" if paired is None else f"{'yes' if paired.distinguishable else 'no'} (p={paired.p:.2g})"


def paired_long(paired: Paired | None, below: Row | None) -> str:
    if paired is None:
        return "no next row" if below is None else "no shared points with the next row"
    verdict = "distinguishable" if paired.distinguishable else "not distinguishable"
    assert below is not None
    return (f"{verdict} from `{below.label}` (p={paired.p:.2g}, {paired.here}:{paired.there} of "
            f"n={paired.shared})")


def _official_vs_fast(row: Row) -> str:
    d = row.official_vs_fast
    assert d is not None
    missed = (f"aa broke {len(d.only_first)} that aa-fast left robust (test index {', '.join(map(str, d.only_first))})"
              if d.only_first else "aa broke nothing aa-fast left robust")
    return f"- `{row.label}`, {d.shared} points: {missed}; aa-fast broke {d.only_second} that aa left robust."


def subset_text(row: Row) -> str:
    """The "subset attacks" cell: each, and what it found beyond the full-set attacks (⚠ if anything)."""
    parts = [f"{'⚠ ' if b.broken else ''}{label} +{b.broken} of {b.of}" for label, b in row.beyond.items()]
    return ", ".join(parts) or "–"


def _worst_text(row: Row) -> str:
    lo, hi = row.worst.interval
    flag = " ⚠" if any(not c.passed for c in row.checks) else ""
    return f"**{100 * row.worst.value:.1f}** [{100 * lo:.1f}, {100 * hi:.1f}]{flag}"


def _table(rows: list[Row]) -> str:
    """The ranking: what a reader compares across rows. Everything else is in the details."""
    body = []
    for rank, row in enumerate(rows, 1):
        wn = row.worst.n
        official = row.attacks.get(OFFICIAL)
        body.append([rank, f"`{row.label}` {row.sha256[:12]}", row.arch or "", row.clean.cell_text(wn),
                     official.cell_text(wn) if official else "–", _worst_text(row), wn,
                     paired_short(versus_next(row, rows[rank] if rank < len(rows) else None)),
                     _audit_link(row.audit) if row.audit else "not audited"])
    headers = ["#", "checkpoint", "arch", "clean", "AutoAttack", "worst case [95% CI]", "n", "vs next row", "audit"]
    return markdown_table(body, headers)


def markdown_table(body: list[list[Any]], headers: list[str]) -> str:
    """A GitHub table whose cells cannot break it: a `|` in a cell is escaped, a line break is a space."""
    cells = [[str(cell).replace("|", "\\|").replace("\r", " ").replace("\n", " ") for cell in line] for line in body]
    return str(tabulate(cells, headers=headers, tablefmt="github", disable_numparse=True))


def _details(rows: list[Row]) -> str:
    """Per checkpoint, in rank order: every attack, the subset attacks, the paired test, the
    training budget, the checks and the curves."""
    parts = []
    for rank, row in enumerate(rows, 1):
        wn = row.worst.n
        below = rows[rank] if rank < len(rows) else None
        named = [f"{name} {row.attacks[col].cell_text(wn)}" for name, col in COLUMNS if col in row.attacks]
        others = [f"{label} {cell.cell_text(wn)}" for label, cell in sorted(row.attacks.items())
                  if label not in dict((v, k) for k, v in COLUMNS)]
        links = " · ".join(f"[{text}]({path})" for text, path in row.plots)
        lines = [f"#### {rank}. `{row.label}` {row.sha256[:12]}", ""]
        if row.variant:
            lines.append(f"- variant: {row.variant}")
        lines += [f"- robust accuracy (%, n={wn} unless marked): {', '.join(named + others) or '–'}",
                  f"- worst case: {_worst_text(row)} on {wn} points; attacks on a subset: {subset_text(row)}",
                  f"- vs next row: {paired_long(versus_next(row, below), below)}",
                  f"- training budget: {budget_text(row.budget) or '–'}; last evaluated {row.date[:10]}",
                  f"- sanity checks: {checks_text(row)}",
                  f"- audit: {_audit_link(row.audit) if row.audit else 'not audited'}; curves: {links or '–'}"]
        if row.older:
            lines.append(f"- from an older protocol version: {', '.join(row.older)}")
        if row.external:
            lines.append(f"- external evaluations (re-verified by `bench verify-adv`): {'; '.join(row.external)}")
        lines.append("")
        parts.append("\n".join(lines))
    return "\n".join(parts)


HEADER = """# Leaderboard

Generated by `bench leaderboard` from {count} run records in `results/runs/` (schema {schema}); do not
edit: regenerate. Robust accuracy in % on the test split, ranked by the **worst case** over every
attack per test point (95% interval); ⚠ marks a failed check. [How to read this board](#how-to-read-this-board).
"""

HOW_TO_READ = """## How to read this board

Accuracies in % on the test split. Each attack's number comes from the
record of that checkpoint with the attack in its default configuration on the most test points
(the newest of those, whichever version of the attack it ran); a number measured on a different
number of points than the worst case says so (`n=`), one from an older version of its attack than
today's is listed in the row's details ("from an older protocol version").
**Worst case** (the headline, rows are sorted by it) is per test point of the row's full evaluation
set — the points of its largest record, `n` —: a point counts as robust only if every attack that
ran on it failed; with its 95% Wilson interval; ⚠ marks a failed check (see the row's details).
Attacks run on fewer points (typically the official AutoAttack, or the long Square run, on the
first 200) count on the points where they ran; each row's details list them with the number of their
points they broke that the attacks run on every point had left robust (`+0 of 200`: nothing more;
⚠: something, so where they did not run the worst case may be too high by about that rate).
**vs next row**: an exact McNemar test on the per-example worst-case flags of the points this row
and the next both evaluated; "yes" when p < 0.05 (uncorrected for the number of pairs), else the
rank difference may be chance (the details give the counts).
Sanity checks (rules in `bench/auditing/checks.py`; [docs/checklist.md](../docs/checklist.md) maps them to
Carlini et al.'s checklist): ε-curve = robust accuracy falls with ε and reaches the largest class
share where every input can be moved to the same image; unbounded ε = attacks break ≥ 99% where
every image is reachable; steps = more attack steps never help the model; black-box = Square (and
transfer attacks) break at most 1% of what white-box attacks left robust; single-step = so does
FGSM, of what the iterative attacks left; noise = so does the random-noise baseline; AA checks =
AutoAttack raised no warning. The adaptive attacks a defense calls for (`--attack adaptive`) and
external evaluations re-verified by `bench verify-adv` (`external:NAME`, source in the row's
details) count in the worst case on the points where they ran. **Audit** = the verdict of the
newest `bench audit` (report linked), whose model probes (AA model checks, gradients), adaptive gap
(adaptive attacks break ≤ 1% of what standard ones left robust) and binarization test (PGD and APGD
find adversarial examples that provably exist, tasks passed shown per attack; ✗ = below 90% with
95% confidence) join the checks. `bench leaderboard --html` writes the same as one sortable page.
"""


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


def render(records: list[RunRecord], audits: list[AuditSummary] | None = None) -> tuple[str, dict[str, bytes]]:
    """(markdown, {plot path relative to results/: PNG bytes}); `audits` oldest first."""
    board = prepare(records, audits)
    current, superseded, files = board.current, board.superseded, board.files
    parts = [HEADER.format(count=len(records), schema=SCHEMA_VERSION)]
    for key, rows in current.items():
        dataset, norm, eps = key
        parts.append(f"## {dataset} — {NORM_SYMBOL[norm]} ε = {eps:g}\n")
        details: list[tuple[str, str]] = []
        groups = by_budget(rows)
        for budget, budget_rows in groups.items():
            heading = budget_heading(budget, groups)
            if heading:
                parts.append(f"### {heading}\n")
            parts.append(_table(budget_rows) + "\n")
            details.append((budget, _details(budget_rows)))
        parts += budget_comparison(groups)
        compared = [row for row in rows if row.official_vs_fast is not None]
        if compared:
            parts.append("The official AutoAttack against aa-fast, per example on the points both ran (aa-fast is "
                         "meant never to be weaker):\n")
            parts += [_official_vs_fast(row) for row in compared]
            parts.append("")
        audit_table = _audit_table(rows)
        if audit_table:
            parts.append("Gradient-masking audits (`bench audit`, newest per checkpoint; robust accuracy in % on "
                         "the audit's points, standard = FGSM, PGD, C&W, AutoAttack):\n")
            parts.append(audit_table + "\n")
        failures = [(row, c) for row in rows for c in row.checks if not c.passed]
        if failures:
            parts.append("Failed sanity checks:\n")
            parts += [f"- `{row.label}` {c.check.label}: {c.detail}" for row, c in failures]
            parts.append("")
        overview = f"plots/{_slug(dataset)}-{norm}-eps-all.png"
        if overview in files:
            parts.append(f"![PGD robust accuracy vs ε]({overview})\n")
        for budget, text in details:
            parts.append(f"### Details{'' if budget == 'recipe' else f' (training budget `{budget}`)'}\n")
            parts.append(text)
        if superseded[key]:
            parts.append("Superseded checkpoints (a newer file at the same path has records):\n")
            parts += [f"- `{row.label}` {row.sha256[:12]} ({row.path}), last evaluated {row.date[:10]}: worst case "
                      f"{100 * row.worst.accuracy:.1f}% on n={row.worst.n}" for row in superseded[key]]
            parts.append("")
    parts.append(HOW_TO_READ)
    return "\n".join(parts).rstrip() + "\n", files


def write(records: list[RunRecord], results_root: Path) -> tuple[Path, list[Path]]:
    """Write LEADERBOARD.md and its plots; plots no longer referenced are removed."""
    from bench.auditing.report import load_audits

    markdown, files = render(records, load_audits(results_root / "audits"))
    for name, content in sorted(files.items()):
        write_if_changed(results_root / name, content)
    for stale in sorted((results_root / "plots").glob("*.png")):
        if f"plots/{stale.name}" not in files:
            stale.unlink()
    path = results_root / "LEADERBOARD.md"
    write_if_changed(path, markdown.encode())
    return path, [results_root / name for name in sorted(files)]
