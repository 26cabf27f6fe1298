"""`bench leaderboard --html`: the leaderboard as one self-contained page.

The same rows as LEADERBOARD.md (`bench.leaderboards.prepare`), with the plots inlined as data
URIs and no external resource, so the file can be mailed or archived. The ranking tables sort by
any column on a click; `#sort=COLUMN` or `#sort=COLUMN:desc` in the address opens the page sorted
(columns by their `data-key`), which also makes the sorting testable in a headless browser.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from bench.files import write_if_changed
from bench.leaderboards import (
    HEADER,
    NORM_SYMBOL,
    OFFICIAL,
    Board,
    Row,
    budget_text,
    by_budget,
    checks_text,
    paired_long,
    paired_short,
    prepare,
    subset_text,
    versus_next,
)
from bench.run_record import RunRecord
from bench.schema import SCHEMA_VERSION
from bench.stats import wilson_interval

# (data-key, header, numeric): the ranking's columns, as in LEADERBOARD.md
COLUMNS = (("rank", "#", True), ("checkpoint", "checkpoint", False), ("arch", "arch", False),
           ("clean", "clean", True), ("autoattack", "AutoAttack", True), ("worst", "worst case [95% CI]", True),
           ("n", "n", True), ("next", "vs next row", True), ("audit", "audit", False))

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
th { background: #f2f2f2; cursor: pointer; user-select: none; }
th[aria-sort="ascending"]::after { content: " ▲"; } th[aria-sort="descending"]::after { content: " ▼"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.warn { color: #b00; } section.row { border-top: 1px solid #ddd; margin-top: 1.5em; }
img { max-width: 32em; margin: 0.5em 1em 0 0; }
"""

SCRIPT = """
function sortTable(table, key, descending) {
  const heads = Array.from(table.tHead.rows[0].cells);
  const column = heads.findIndex(th => th.dataset.key === key);
  if (column < 0) return;
  const numeric = heads[column].dataset.numeric === "1";
  const rows = Array.from(table.tBodies[0].rows);
  const value = row => { const cell = row.cells[column];
    return numeric ? parseFloat(cell.dataset.value) : cell.textContent.trim().toLowerCase(); };
  rows.sort((a, b) => { const x = value(a), y = value(b);
    const order = numeric ? (isNaN(x) ? 1 : isNaN(y) ? -1 : x - y) : x.localeCompare(y);
    return descending ? -order : order; });
  rows.forEach(row => table.tBodies[0].appendChild(row));
  heads.forEach(th => th.removeAttribute("aria-sort"));
  heads[column].setAttribute("aria-sort", descending ? "descending" : "ascending");
}
document.querySelectorAll("table.ranking").forEach(table => {
  Array.from(table.tHead.rows[0].cells).forEach(th => th.addEventListener("click", () =>
    sortTable(table, th.dataset.key, th.getAttribute("aria-sort") === "ascending")));
});
const wanted = /^#sort=([a-z]+)(:desc)?$/.exec(location.hash);
if (wanted) document.querySelectorAll("table.ranking").forEach(t => sortTable(t, wanted[1], !!wanted[2]));
"""


def _inline(text: str) -> str:
    """Escaped text with the markdown the row texts use: `code`, **bold**, [text](link)."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"\[([^\]]+)\]\(([^)]+)\)", lambda m: f'<a href="{html.escape(m[2])}">{m[1]}</a>', out)


def _anchor(row: Row) -> str:
    return f"row-{re.sub(r'[^a-z0-9-]', '-', row.label.lower())}-{row.sha256[:12]}"


def _cell(text: str, value: float | None = None) -> str:
    if value is None:
        return f"<td>{text}</td>"
    return f'<td class="num" data-value="{value:.6g}">{text}</td>'


def _audit(row: Row) -> str:
    if row.audit is None:
        return "not audited"
    link = f"audits/{row.audit['_file'].removesuffix('.json')}.md"
    return f'<a href="{html.escape(link)}">{html.escape(row.audit["verdict"])}</a>'


def _worst(row: Row) -> str:
    lo, hi = wilson_interval(row.worst.count, row.worst.n)
    flag = ' <span class="warn" title="a check failed: see the details">⚠</span>' if any(
        not c.passed for c in row.checks) else ""
    return f"<strong>{100 * row.worst.accuracy:.1f}</strong> [{100 * lo:.1f}, {100 * hi:.1f}]{flag}"


def _ranking(rows: list[Row]) -> str:
    head = "".join(f'<th data-key="{key}" data-numeric="{int(numeric)}">{html.escape(title)}</th>'
                   for key, title, numeric in COLUMNS)
    body = []
    for rank, row in enumerate(rows, 1):
        n = row.worst.n
        official = row.attacks.get(OFFICIAL)
        paired = versus_next(row, rows[rank] if rank < len(rows) else None)
        cells = [_cell(str(rank), rank),
                 _cell(f'<a href="#{_anchor(row)}"><code>{html.escape(row.label)}</code></a> {row.sha256[:12]}'),
                 _cell(html.escape(row.arch or "")),
                 _cell(row.clean.text(n), row.clean.accuracy),
                 _cell(official.text(n), official.accuracy) if official else _cell("–", float("nan")),
                 _cell(_worst(row), row.worst.accuracy), _cell(str(n), n),
                 _cell(html.escape(paired_short(paired)), paired.p if paired else float("nan")),
                 _cell(_audit(row))]
        body.append(f'<tr id="rank-{rank}">{"".join(cells)}</tr>')
    return (f'<table class="ranking"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _details(rows: list[Row], files: dict[str, bytes]) -> str:
    parts = []
    for rank, row in enumerate(rows, 1):
        n = row.worst.n
        below = rows[rank] if rank < len(rows) else None
        attacks = ", ".join(f"{html.escape(label)} {cell.text(n)}" for label, cell in sorted(row.attacks.items()))
        items = [f"variant: {_inline(row.variant)}" if row.variant else None,
                 f"robust accuracy (%, n={n} unless marked): {attacks or '–'}",
                 f"worst case: {_worst(row)} on {n} points; attacks on a subset: {_inline(subset_text(row))}",
                 f"vs next row: {_inline(paired_long(versus_next(row, below), below))}",
                 f"training budget: {_inline(budget_text(row.budget) or '–')}; last evaluated {row.date[:10]}",
                 f"sanity checks: {_inline(checks_text(row))}",
                 f"audit: {_audit(row)}",
                 f"from an older protocol version: {_inline(', '.join(row.older))}" if row.older else None,
                 f"external evaluations (re-verified by <code>bench verify-adv</code>): "
                 f"{_inline('; '.join(row.external))}" if row.external else None]
        images = "".join(
            f'<img alt="{html.escape(text)} curve of {html.escape(row.label)}" '
            f'src="data:image/png;base64,{base64.b64encode(files[path]).decode()}">'
            for text, path in row.plots if path in files)
        parts.append(f'<section class="row" id="{_anchor(row)}"><h3>{rank}. <code>{html.escape(row.label)}</code> '
                     f'{row.sha256[:12]}</h3><ul>{"".join(f"<li>{i}</li>" for i in items if i)}</ul>{images}</section>')
    return "".join(parts)


def render(board: Board, header_markdown: str) -> str:
    """The page: the header's rules, then per table its ranking and its rows' details."""
    paragraphs = [p for p in header_markdown.split("\n\n")[1:] if p.strip()]  # the title is the page's <h1>
    body = ["<h1>Leaderboard</h1>", *(f"<p>{_inline(' '.join(p.split()))}</p>" for p in paragraphs)]
    for (dataset, norm, eps), rows in board.current.items():
        body.append(f"<h2>{html.escape(dataset)} — {NORM_SYMBOL[norm]} ε = {eps:g}</h2>")
        for budget, budget_rows in by_budget(rows).items():
            if budget != "recipe":
                body.append(f"<h3>Training budget <code>{html.escape(budget)}</code></h3>")
            body.append(_ranking(budget_rows))
            body.append(_details(budget_rows, board.files))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Leaderboard</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}<script>{SCRIPT}</script></body></html>\n")


def write(records: list[RunRecord], results_root: Path) -> Path:
    """LEADERBOARD.html beside LEADERBOARD.md, from the same records and audits."""
    from bench.audit_report import load_audits

    board = prepare(records, load_audits(results_root / "audits"))
    path = results_root / "LEADERBOARD.html"
    write_if_changed(path, render(board, HEADER.format(count=board.records, schema=SCHEMA_VERSION)).encode())
    return path
