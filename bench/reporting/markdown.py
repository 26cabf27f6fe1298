"""`results/LEADERBOARD.md` and its plots, from the rows (`bench.reporting.rows`): the ranking and
details as `bench.reporting.columns` defines them, then what only the Markdown page has room for
(recipe-vs-budget comparisons, aa against aa-fast, the audit table, failed checks, superseded
checkpoints). Regenerating from the same records gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tabulate import tabulate

from bench.auditing.report import AuditSummary
from bench.files import write_if_changed
from bench.records.run_record import RunRecord
from bench.records.schema import SCHEMA_VERSION
from bench.reporting import columns
from bench.reporting.columns import audit_link, detail_items, ranked
from bench.reporting.rows import (
    NORM_SYMBOL,
    OFFICIAL,
    Row,
    budget_heading,
    by_budget,
    overview_plot,
    paired,
    prepare,
)
from bench.stats import Proportion, kendall_tau


def markdown_table(body: list[list[Any]], headers: list[str]) -> str:
    """A GitHub table whose cells cannot break it: a `|` in a cell is escaped, a line break is a space."""
    cells = [[str(cell).replace("|", "\\|").replace("\r", " ").replace("\n", " ") for cell in line] for line in body]
    return str(tabulate(cells, headers=headers, tablefmt="github", disable_numparse=True))



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
                     f"**{_pct_pair(worst['audit'])}**", _binarization_cell(audit), audit_link(audit)])
    headers = ["checkpoint", "n", "AutoAttack", "standard worst case", "adaptive attacks", "adaptive worst case",
               "audit worst case", "binarization test", "verdict"]
    return markdown_table(body, headers) if body else ""



def _official_vs_fast(row: Row) -> str:
    d = row.official_vs_fast
    assert d is not None
    missed = (f"aa broke {len(d.only_first)} that aa-fast left robust (test index {', '.join(map(str, d.only_first))})"
              if d.only_first else "aa broke nothing aa-fast left robust")
    return f"- `{row.label}`, {d.shared} points: {missed}; aa-fast broke {d.only_second} that aa left robust."



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



def _table(rows: list[Row]) -> str:
    """The ranking: what a reader compares across rows. Everything else is in the details."""
    return markdown_table([[column.text(r) for column in columns.RANKING] for r in ranked(rows)],
                          [column.heading for column in columns.RANKING])


def _details(rows: list[Row]) -> str:
    """Per checkpoint, in rank order, the items `bench.reporting.columns.DETAILS` defines."""
    parts = []
    for r in ranked(rows):
        lines = [f"#### {r.rank}. `{r.row.label}` {r.row.sha256[:12]}", "", *(f"- {item}" for item in detail_items(r)), ""]
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
        overview = overview_plot(key)
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
