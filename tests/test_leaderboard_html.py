"""`bench leaderboard --html`: one self-contained page with the committed rows, sorted by a real
headless Chromium (Debian's `chromium`, which `make test` installs where apt can)."""

import dataclasses
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from bench.auditing.report import load_audits
from bench.records.run_record import load_run_records
from bench.reporting import html as leaderboard_html
from bench.reporting import markdown as board_markdown
from bench.reporting import rows as board_rows
from bench.reporting import text
from bench.reporting.document import Sources
from tests.conftest import board_labels, leaderboard_of_committed


class Page(HTMLParser):
    """What a reader's browser would fetch and show: resources, ranking rows, detail sections."""

    def __init__(self) -> None:
        super().__init__()
        self.resources: list[str] = []
        self.rows: list[str] = []
        self.sections: list[str] = []
        self.tables: list[dict[str, list[float]]] = []  # per ranking table (one per training budget): key → values
        self.ranks: list[list[int]] = []  # per ranking table: its rows' ranks in the order shown
        self._column = -1
        self._keys: list[str] = []

    @property
    def values(self) -> dict[str, list[float]]:
        """The sort values of the published defenses' ranking: the recipe budget's, the last table."""
        return self.tables[-1]

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("img", "script", "link", "iframe") and (a.get("src") or a.get("href")):
            self.resources.append(a.get("src") or a.get("href"))
        if tag == "table" and "ranking" in (a.get("class") or "").split():
            self.tables.append({})
            self.ranks.append([])
            self._keys = []
        if tag == "th" and "data-key" in a:
            self._keys.append(a["data-key"])
        if tag == "tr" and (a.get("id") or "").startswith("rank-"):
            self.rows.append(a["id"])
            self.ranks[-1].append(int(a["id"].removeprefix("rank-")))
            self._column = -1
        if tag == "td" and self.rows:
            self._column += 1
            if "data-value" in a and self._column < len(self._keys):
                self.tables[-1].setdefault(self._keys[self._column], []).append(float(a["data-value"]))
        if tag == "section" and a.get("id", "").startswith("row-"):
            self.sections.append(a["id"])


def _page(path) -> Page:
    page = Page()
    page.feed(path.read_text())
    return page


@pytest.fixture(scope="module")
def page_file(tmp_path_factory, committed):
    return leaderboard_of_committed(committed, tmp_path_factory.mktemp("html"), "--html") / "LEADERBOARD.html"


def test_the_page_is_self_contained_with_every_published_row_and_its_details(page_file, committed):
    page = _page(page_file)
    assert page.resources and all(r.startswith("data:image/png;base64,") for r in page.resources)
    assert len(page.values["worst"]) == len(board_labels()) and len(page.rows) == len(page.sections)
    for table in page.tables:
        assert table["worst"] == sorted(table["worst"], reverse=True)  # ranked as LEADERBOARD.md
    text = page_file.read_text()
    for row in re.findall(r"\| \d+ +\| `([^`]+)`", (committed / "LEADERBOARD.md").read_text()):
        assert f"<code>{row}</code>" in text


def test_the_page_ranks_as_the_markdown_does(committed):
    records, audits = load_run_records(committed / "runs"), load_audits(committed / "audits")
    board = board_rows.prepare(records, audits)
    html = leaderboard_html.render(board, Sources.committed(board.records))
    markdown, _ = board_markdown.render(records, audits)
    ranked_md = re.findall(r"\| (\d+) +\| `([^`]+)`", markdown)
    ranked_html = re.findall(r'<tr id="rank-(\d+)"><td[^>]*>\d+</td><td><a href="#[^"]+"><code>([^<]+)</code>', html)
    assert ranked_md == ranked_html and ranked_md


class Headings(HTMLParser):
    """The page's headings as text, and each table's header cells."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.table_heads: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag in ("h1", "h2", "h3", "h4", "th"):
            self._in = tag
            (self.table_heads if tag == "th" else self.headings).append("")

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None

    def handle_data(self, data):
        if self._in:
            target = self.table_heads if self._in == "th" else self.headings
            target[-1] += data


def _plain(markdown_text: str) -> str:
    """Inline Markdown as the text a browser shows."""
    return re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", markdown_text).replace("`", "").replace("**", "")


def test_the_page_has_every_section_the_markdown_has(page_file, committed):
    """One document, two renderings: the same headings in the same order, every table's columns
    (the audit table's included), the ε overview plot and the sections only text carries."""
    markdown = (committed / "LEADERBOARD.md").read_text()
    page = page_file.read_text()
    found = Headings()
    found.feed(page)
    assert found.headings == [_plain(line.lstrip("#").strip()) for line in markdown.splitlines()
                              if re.match(r"#{1,4} ", line)]
    md_heads = [cell.strip() for line in markdown.splitlines() if line.startswith("| ") and
                markdown.splitlines()[markdown.splitlines().index(line) + 1].startswith("|--")
                for cell in line.strip("|").split("|")]
    assert [h.strip() for h in found.table_heads] == [_plain(h) for h in md_heads]
    for in_markdown, in_page in (("Gradient-masking audits", "Gradient-masking audits"),
                                 ("The official AutoAttack against aa-fast", "The official AutoAttack against aa-fast"),
                                 ("Failed sanity checks:", "Failed sanity checks:"),
                                 ("Superseded checkpoints", "Superseded checkpoints"),
                                 ("![PGD robust accuracy vs ε](", 'alt="PGD robust accuracy vs ε"')):
        assert (in_markdown in markdown) == (in_page in page), in_markdown
    assert "Gradient-masking audits" in page and 'alt="PGD robust accuracy vs ε"' in page  # the committed board has both


def _browser() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI must check the HTML leaderboard in a real browser: `make test` installs chromium")
        pytest.skip("no chromium here (make test installs Debian's where apt can)")
    return found


def _rendered(page_file, fragment: str, tmp_path) -> Page:
    """The DOM after the page's own script ran in headless Chromium, opened at `#fragment`."""
    out = subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          f"--user-data-dir={tmp_path / 'profile'}", f"{page_file.as_uri()}#{fragment}"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    dumped = tmp_path / "dom.html"
    dumped.write_text(out)
    return _page(dumped)


@pytest.mark.browser
@pytest.mark.timeout(300)
@pytest.mark.parametrize(("fragment", "key", "descending"), [
    ("sort=clean:desc", "clean", True), ("sort=worst", "worst", False), ("sort=autoattack:desc", "autoattack", True)])
def test_a_real_browser_sorts_the_ranking_by_any_column(page_file, tmp_path, fragment, key, descending):
    page = _rendered(page_file, fragment, tmp_path)
    assert len(page.values[key]) == len(board_labels())
    for table in page.tables:  # each budget's ranking sorts
        assert table[key] == sorted(table[key], reverse=descending)
    assert page.ranks[-1] != sorted(page.ranks[-1])  # the script moved the published rows: no ranking
    # order has these columns sorted ascending (worst) or descending (clean, AutoAttack) as asked
    dom = (tmp_path / "dom.html").read_text()
    assert re.search(f'<th data-key="{key}"[^>]* aria-sort="{"descending" if descending else "ascending"}"', dom)
    assert 'class="ranking reordered"' in dom  # "vs next row" hidden: it describes rank neighbours


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_sorted_back_into_rank_order_the_neighbour_column_returns(page_file, tmp_path):
    page = _rendered(page_file, "sort=rank", tmp_path)
    assert len(page.ranks) == len(page.tables) and all(ranks == sorted(ranks) for ranks in page.ranks)  # per budget
    dom = (tmp_path / "dom.html").read_text()
    assert 'class="ranking reordered"' not in dom and re.search('<th data-key="rank"[^>]* aria-sort="ascending"', dom)


# --- records are files handed to us: nothing in them may run in the reader's browser --------------

HOSTILE = '<img src=x onerror="document.title=\'PWNED\'"><script>document.title="PWNED"</script>'
HOSTILE_URL = "javascript:document.title='PWNED'"


def _hostile_board(committed) -> board_rows.Board:
    """The committed board with every text a record or an audit carries replaced by markup, script
    and `javascript:` links (in the forms `bench verify-adv --source` and a hand-edited record take)."""
    board = board_rows.prepare(load_run_records(committed / "runs"), load_audits(committed / "audits"))
    for rows in board.current.values():
        for row in rows:
            row.label = f"{row.label}{HOSTILE}"
            row.variant = f"[arxiv.org/abs/2401.00001]({HOSTILE_URL}) {HOSTILE} `{HOSTILE}` **{HOSTILE}**"
            row.date = f'2026"><svg onload="document.title=1">{HOSTILE}'
            row.arch = HOSTILE
            row.external = [f"[paper](https://x.org/a?b=1\"onmouseover=\"alert(1)) [see]({HOSTILE_URL}) "
                            f"[x](//evil.example/a) [y](data:text/html,{HOSTILE})"]
            row.older = [HOSTILE]
            row.attacks = {f"aa{HOSTILE}": cell for cell in row.attacks.values()}
            if row.audit is not None:
                row.audit = dataclasses.replace(row.audit, verdict=HOSTILE, file=f"{HOSTILE_URL}.json")
    return board


class Scripting(HTMLParser):
    """Every way the page could run script: event handlers, script elements, script URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.handlers: list[str] = []
        self.scripts = 0
        self.script_urls: list[str] = []
        self.csp = ""

    def handle_starttag(self, tag, attrs):
        self.scripts += tag == "script"
        for name, value in attrs:
            if name.startswith("on"):
                self.handlers.append(f"{tag} {name}")
            if name in ("href", "src", "action", "formaction") and value and not value.startswith(
                    ("http://", "https://", "#", "data:image/png;base64,")) and ":" in value.split("/")[0]:
                self.script_urls.append(value)
        if tag == "meta" and dict(attrs).get("http-equiv") == "Content-Security-Policy":
            self.csp = dict(attrs)["content"]


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_hostile_records_render_as_text_and_no_script_runs_in_a_real_browser(committed, tmp_path):
    board = _hostile_board(committed)
    page = tmp_path / "hostile.html"
    page.write_text(leaderboard_html.render(board, Sources(((f"runs/ [records](runs/) {HOSTILE}", 3),), tmp_path)))
    static = Scripting()
    static.feed(page.read_text())
    assert static.handlers == [] and static.script_urls == [] and static.scripts == 1  # the page's own
    assert "script-src 'sha256-" in static.csp and "unsafe-inline" not in static.csp
    assert "PWNED" in page.read_text()  # the hostile text is there, as text
    rendered = _rendered(page, "sort=clean:desc", tmp_path)  # the page's own script still runs
    dom = (tmp_path / "dom.html").read_text()
    assert "<title>Leaderboard</title>" in dom and "PWNED</title>" not in dom
    after = Scripting()
    after.feed(dom)
    assert after.handlers == [] and after.script_urls == []
    assert all(table["clean"] == sorted(table["clean"], reverse=True) for table in rendered.tables)


@pytest.mark.parametrize(("url", "admitted"), [
    ("https://arxiv.org/abs/2401.00001", True), ("http://example.org/a?b=1#c", True), ("audits/x-1.md", True),
    ("../docs/checklist.md", True), ("#row-a", True), ("javascript:alert(1)", False), ("JavaScript:alert(1)", False),
    ("data:text/html,x", False), ("//evil.example/x", False), ("https://", False), ("https://a.org/\"onclick=x", False),
    ("https://a.org/ x", False), ("vbscript:x", False), ("java\tscript:x", False), ("a" * 3000, False)])
def test_links_are_admitted_by_an_allow_list(url, admitted):
    assert (text.safe_href(url) is not None) is admitted


def test_markdown_cells_and_texts_from_records_cannot_break_the_board():
    table = board_markdown.markdown_table([["a|b\nc", "`x`"]], ["checkpoint", "n"])
    assert len(table.splitlines()) == 3 and table.splitlines()[2].count("|") - table.count("\\|") == 3
    shown = text.markdown_text("[arxiv.org/abs/1](javascript:alert(1))\n<script>")
    assert "](" not in shown.replace("\\]\\(", "") and "<" not in shown.replace("\\<", "") and "\n" not in shown
    assert str(leaderboard_html.inline(shown)) == "[arxiv.org/abs/1](javascript:alert(1)) &lt;script&gt;"
