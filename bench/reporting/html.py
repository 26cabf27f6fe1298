"""`bench leaderboard --html`: the leaderboard as one self-contained page.

The same rows as LEADERBOARD.md (`bench.reporting.rows.prepare`, shown as `bench.reporting.columns` defines), with the plots inlined as data
URIs and no external resource, so the file can be mailed or archived. Every text comes from run
records, which are files handed to us: the page is rendered by Jinja2 with autoescaping, links are
admitted only to http(s) or page-relative addresses, and a Content-Security-Policy lets nothing run
but the page's own sorting script (by its hash). The ranking tables sort by
any column on a click; `#sort=COLUMN` or `#sort=COLUMN:desc` in the address opens the page sorted
(columns by their `data-key`), which also makes the sorting testable in a headless browser.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup

from bench.files import write_if_changed
from bench.records.run_record import RunRecord
from bench.records.schema import SCHEMA_VERSION
from bench.reporting import columns
from bench.reporting.columns import Column, Ranked, detail_items, ranked
from bench.reporting.markdown import HEADER, HOW_TO_READ
from bench.reporting.rows import NORM_SYMBOL, Board, Row, budget_heading, by_budget, prepare
from bench.reporting.text import safe_href

INLINE = re.compile(r"\\(?P<escaped>[^\sA-Za-z0-9])|`(?P<code>[^`]+)`|\*\*(?P<bold>[^*]+)\*\*|\[(?P<label>[^\]]+)\]\((?P<url>[^)\s]+)\)")


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
th { background: #f2f2f2; cursor: pointer; user-select: none; }
th[aria-sort="ascending"]::after { content: " ▲"; } th[aria-sort="descending"]::after { content: " ▼"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
section.row { border-top: 1px solid #ddd; margin-top: 1.5em; }
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


def inline(text: str) -> Markup:
    """The markdown the row texts use (`code`, **bold**, [text](link)) as HTML: every piece of the
    source escaped, links only to `safe_href` addresses, an absolute address shown as itself."""
    out = Markup()
    while text:
        match = INLINE.search(text)
        if match is None:
            return out + text
        out += text[:match.start()]
        escaped, code, bold, label, url = match.group("escaped", "code", "bold", "label", "url")
        if escaped is not None:
            out += escaped
        elif code is not None:
            out += Markup("<code>{}</code>").format(code)
        elif bold is not None:
            out += Markup("<strong>{}</strong>").format(inline(bold))
        else:
            out += _link(label, url)
        text = text[match.end():]
    return out


def _link(label: str, url: str) -> Markup:
    href = safe_href(url)
    if href is None:
        return Markup("{} (link not shown: not an http(s) address)").format(inline(label))
    if urlsplit(href).scheme:  # absolute: the visible text is the address itself, not what it claims
        shown = Markup('<a href="{0}">{0}</a>').format(href)
        return shown if label == url else Markup("{} ({})").format(inline(label), shown)
    return Markup('<a href="{}">{}</a>').format(href, inline(label))


def _anchor(row: Row) -> str:
    return f"row-{re.sub(r'[^a-z0-9-]', '-', row.label.lower())}-{row.sha256[:12]}"


def _cell(column: Column, r: Ranked) -> tuple[Markup, float | None]:
    """A ranking cell: the column's text as HTML, and its sort value (None: a text column)."""
    content = inline(column.text(r))
    if column.links_details:
        content = Markup('<a href="#{}">{}</a>').format(_anchor(r.row), content)
    return content, None if column.value is None else column.value(r)


def _ranking_rows(rows: list[Row]) -> list[list[tuple[Markup, float | None]]]:
    """Per row, its cells in `columns.RANKING` order."""
    return [[_cell(column, r) for column in columns.RANKING] for r in ranked(rows)]


def _details(rows: list[Row]) -> list[list[Markup]]:
    """Per row, the items of its detail section (`bench.reporting.columns.DETAILS`)."""
    return [[inline(item) for item in detail_items(r)] for r in ranked(rows)]


def _tables(board: Board) -> list[dict[str, Any]]:
    tables = []
    for (dataset, norm, eps), rows in board.current.items():
        groups = by_budget(rows)
        budgets = [{"heading": inline(heading) if (heading := budget_heading(budget, groups)) else None,
                    "ranking": _ranking_rows(budget_rows),
                    "rows": [{"anchor": _anchor(row), "label": row.label, "sha": row.sha256[:12], "rank": rank,
                              "entries": entries,
                              "plots": [(f"{text} curve of {row.label}", base64.b64encode(board.files[path]).decode())
                                        for text, path in row.plots if path in board.files]}
                             for rank, (row, entries) in enumerate(zip(budget_rows, _details(budget_rows), strict=True), 1)]}
                   for budget, budget_rows in groups.items()]
        tables.append({"title": f"{dataset} — {NORM_SYMBOL[norm]} ε = {eps:g}", "budgets": budgets})
    return tables


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# Nothing but the page's own style and sorting script may run or load: images only as data URIs.
CSP = (f"default-src 'none'; img-src data:; style-src {_csp_hash(STYLE)}; script-src {_csp_hash(SCRIPT)}; "
       "base-uri 'none'; form-action 'none'")

PAGE = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<title>Leaderboard</title><style>{{ style }}</style></head><body><h1>Leaderboard</h1>
{%- for paragraph in header %}<p>{{ paragraph }}</p>{% endfor %}
{%- for table in tables %}<h2>{{ table.title }}</h2>
{%- for part in table.budgets %}
{%- if part.heading %}<h3>{{ part.heading }}</h3>{% endif %}
<table class="ranking"><thead><tr>
{%- for key, title, numeric in columns %}<th data-key="{{ key }}" data-numeric="{{ numeric|int }}">{{ title }}</th>
{%- endfor %}</tr></thead><tbody>
{%- for cells in part.ranking %}<tr id="rank-{{ loop.index }}">
{%- for content, value in cells %}
{%- if value is none %}<td>{{ content }}</td>
{%- else %}<td class="num" data-value="{{ '%.6g' % value }}">{{ content }}</td>{% endif %}
{%- endfor %}</tr>{% endfor %}</tbody></table>
{%- for row in part.rows %}<section class="row" id="{{ row.anchor }}"><h3>{{ row.rank }}. <code>{{ row.label }}</code>
 {{ row.sha }}</h3><ul>{% for item in row.entries %}<li>{{ item }}</li>{% endfor %}</ul>
{%- for alt, png in row.plots %}<img alt="{{ alt }}" src="data:image/png;base64,{{ png }}">{% endfor %}</section>
{%- endfor %}{% endfor %}{% endfor %}
<h2 id="how-to-read-this-board">How to read this board</h2>
{%- for paragraph in rules %}<p>{{ paragraph }}</p>{% endfor %}
<script>{{ script }}</script></body></html>
""")


def _paragraphs(markdown: str) -> list[Markup]:
    """The paragraphs after a Markdown text's heading (the page writes its headings itself)."""
    return [inline(" ".join(p.split())) for p in markdown.split("\n\n")[1:] if p.strip()]


def render(board: Board, header_markdown: str, rules_markdown: str = HOW_TO_READ) -> str:
    """The page, as the Markdown: the header's two-line legend, per table its ranking and its
    rows' details, then how to read the board."""
    headings = [(column.key, column.heading, column.value is not None) for column in columns.RANKING]
    return PAGE.render(csp=CSP, style=Markup(STYLE), script=Markup(SCRIPT), columns=headings,
                       header=_paragraphs(header_markdown), tables=_tables(board), rules=_paragraphs(rules_markdown))


def write(records: list[RunRecord], results_root: Path) -> Path:
    """LEADERBOARD.html beside LEADERBOARD.md, from the same records and audits."""
    from bench.auditing.report import load_audits

    board = prepare(records, load_audits(results_root / "audits"))
    path = results_root / "LEADERBOARD.html"
    write_if_changed(path, render(board, HEADER.format(count=board.records, schema=SCHEMA_VERSION)).encode())
    return path
