"""`bench leaderboard --html`: the leaderboard as one self-contained page.

The same blocks as LEADERBOARD.md (`bench.reporting.document`: every section, the rows shown as
`bench.reporting.columns` defines them), with the plots inlined as data URIs and no external
resource, so the file can be mailed or archived. Every text comes from run
records, which are files handed to us: the page is rendered by Jinja2 with autoescaping, links are
admitted only to http(s) or page-relative addresses, and a Content-Security-Policy lets nothing run
but the page's own sorting script (by its hash). The ranking tables sort by
any column on a click; `#sort=COLUMN` or `#sort=COLUMN:desc` in the address opens the page sorted
(columns by their `data-key`), which also makes the sorting testable in a headless browser.
Headings show that they sort (⇅, then ▲/▼); while the rows are not in rank order, the columns that
describe a row's rank neighbour ("vs next row") are hidden and a caption says why.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup

from bench.auditing.report import AuditSummary
from bench.files import write_if_changed
from bench.records.run_record import RunRecord
from bench.reporting import columns
from bench.reporting.columns import Column, Ranked, detail_items
from bench.reporting.document import (
    Block,
    Bullets,
    Details,
    Heading,
    Image,
    Paragraph,
    Ranking,
    Sources,
    Table,
    document,
)
from bench.reporting.rows import Board, Row, prepare
from bench.reporting.text import safe_href

INLINE = re.compile(r"\\(?P<escaped>[^\sA-Za-z0-9])|`(?P<code>[^`]+)`|\*\*(?P<bold>[^*]+)\*\*|\[(?P<label>[^\]]+)\]\((?P<url>[^)\s]+)\)")


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
th { background: #f2f2f2; cursor: pointer; user-select: none; }
th[data-key]::after { content: " ⇅"; color: #999; }
th[aria-sort="ascending"]::after { content: " ▲"; color: inherit; }
th[aria-sort="descending"]::after { content: " ▼"; color: inherit; }
caption { display: none; caption-side: bottom; text-align: left; font-size: 0.9em; color: #555; }
table.reordered caption { display: table-caption; }
table.reordered .order-bound { display: none; }
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
  const ranked = Array.from(table.tBodies[0].rows).every((row, i) => row.id === "rank-" + (i + 1));
  table.classList.toggle("reordered", !ranked);
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


def _cell(column: Column, r: Ranked) -> Markup:
    """A ranking cell: the column's text as HTML, with its sort value where it has one."""
    content = inline(column.text(r))
    if column.links_details:
        content = Markup('<a href="#{}">{}</a>').format(_anchor(r.row), content)
    css = " ".join(name for name, wanted in (("num", column.value is not None), ("order-bound", column.order_bound))
                   if wanted)
    attrs = Markup(' class="{}"').format(css) if css else Markup()
    if column.value is not None:
        attrs += Markup(' data-value="{}"').format(f"{column.value(r):.6g}")
    return Markup("<td{}>{}</td>").format(attrs, content)


def _ranking(rows: tuple[Ranked, ...]) -> Markup:
    """A sortable ranking: a click on a heading (or #sort=KEY[:desc]) reorders it; columns that describe
    a row's rank neighbour (`Column.order_bound`) are hidden while the order is not the ranking's."""
    heads = Markup().join(
        Markup('<th data-key="{}" data-numeric="{}" title="sort by {}"{}>{}</th>').format(
            c.key, int(c.value is not None), c.heading, Markup(' class="order-bound"') if c.order_bound else Markup(),
            c.heading) for c in columns.RANKING)
    body = Markup().join(Markup('<tr id="rank-{}">{}</tr>').format(r.rank, Markup().join(_cell(c, r) for c in columns.RANKING))
                         for r in rows)
    bound = ", ".join(f"“{c.heading}”" for c in columns.RANKING if c.order_bound)
    caption = Markup('<caption>Sorted by another column: {} hidden (it compares each row with the next in rank '
                     'order; sort by # to see it).</caption>').format(bound)
    return Markup('<table class="ranking">{}<thead><tr>{}</tr></thead><tbody>{}</tbody></table>').format(
        caption, heads, body)


def _details(rows: tuple[Ranked, ...], files: dict[str, bytes]) -> Markup:
    """Each row's section: the items of `bench.reporting.columns.DETAILS`, its plots inlined."""
    out = Markup()
    for r in rows:
        items = Markup().join(Markup("<li>{}</li>").format(inline(item)) for item in detail_items(r))
        images = Markup().join(_image(f"{text} curve of {r.row.label}", path, files) for text, path in r.row.plots)
        out += Markup('<section class="row" id="{}"><h4>{}. <code>{}</code> {}</h4><ul>{}</ul>{}</section>').format(
            _anchor(r.row), r.rank, r.row.label, r.row.sha256[:12], items, images)
    return out


def _image(alt: str, path: str, files: dict[str, bytes]) -> Markup:
    if path not in files:
        return Markup()
    return Markup('<img alt="{}" src="data:image/png;base64,{}">').format(alt, base64.b64encode(files[path]).decode())


def block_html(block: Block, files: dict[str, bytes]) -> Markup:
    """One block of `bench.reporting.document` as HTML; every text escaped (`inline`)."""
    if isinstance(block, Heading):
        anchor = Markup(' id="{}"').format(block.anchor) if block.anchor else Markup()
        return Markup("<h{0}{1}>{2}</h{0}>").format(block.level, anchor, inline(block.text))
    if isinstance(block, Paragraph):
        return Markup("<p>{}</p>").format(inline(" ".join(block.text.split())))
    if isinstance(block, Bullets):
        return Markup("<ul>{}</ul>").format(Markup().join(Markup("<li>{}</li>").format(inline(i)) for i in block.items))
    if isinstance(block, Table):
        heads = Markup().join(Markup("<th>{}</th>").format(inline(h)) for h in block.headers)
        body = Markup().join(Markup("<tr>{}</tr>").format(Markup().join(Markup("<td>{}</td>").format(inline(c))
                                                                            for c in line)) for line in block.body)
        return Markup("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>").format(heads, body)
    if isinstance(block, Ranking):
        return _ranking(block.rows)
    if isinstance(block, Details):
        return _details(block.rows, files)
    assert isinstance(block, Image)
    return _image(block.alt, block.path, files)


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# Nothing but the page's own style and sorting script may run or load: images only as data URIs.
CSP = (f"default-src 'none'; img-src data:; style-src {_csp_hash(STYLE)}; script-src {_csp_hash(SCRIPT)}; "
       "base-uri 'none'; form-action 'none'")

PAGE = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<title>Leaderboard</title><style>{{ style }}</style></head><body>
{%- for block in blocks %}
{{ block }}
{%- endfor %}
<script>{{ script }}</script></body></html>
""")


def render(board: Board, sources: Sources) -> str:
    """The page: the blocks of `bench.reporting.document`, as the Markdown has them."""
    blocks = [block_html(block, board.files) for block in document(board, sources)]
    return PAGE.render(csp=CSP, style=Markup(STYLE), script=Markup(SCRIPT), blocks=blocks)


def write(records: list[RunRecord], audits: list[AuditSummary], sources: Sources) -> Path:
    """LEADERBOARD.html beside LEADERBOARD.md, from the same records and audits."""
    path = sources.root / "LEADERBOARD.html"
    write_if_changed(path, render(prepare(records, audits), sources).encode())
    return path
