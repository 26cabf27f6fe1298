"""`results/LEADERBOARD.md` and its plots: the blocks of `bench.reporting.document` as Markdown.
Regenerating from the same records gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tabulate import tabulate

from bench.auditing.report import AuditSummary
from bench.files import write_if_changed
from bench.records.run_record import RunRecord
from bench.reporting import columns
from bench.reporting.columns import Ranked, detail_items
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
from bench.reporting.rows import prepare


def markdown_table(body: list[list[Any]], headers: list[str]) -> str:
    """A GitHub table whose cells cannot break it: a `|` in a cell is escaped, a line break is a space."""
    cells = [[str(cell).replace("|", "\\|").replace("\r", " ").replace("\n", " ") for cell in line] for line in body]
    return str(tabulate(cells, headers=headers, tablefmt="github", disable_numparse=True))



def _table(rows: tuple[Ranked, ...]) -> str:
    """The ranking: what a reader compares across rows. Everything else is in the details."""
    return markdown_table([[column.text(r) for column in columns.RANKING] for r in rows],
                          [column.heading for column in columns.RANKING])


def _details(rows: tuple[Ranked, ...]) -> str:
    """Per checkpoint, in rank order, the items `bench.reporting.columns.DETAILS` defines."""
    parts = []
    for r in rows:
        lines = [f"#### {r.rank}. `{r.row.label}` {r.row.sha256[:12]}", "", *(f"- {item}" for item in detail_items(r)), ""]
        parts.append("\n".join(lines))
    return "\n".join(parts)


def block_text(block: Block) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {block.text}\n"
    if isinstance(block, Paragraph):
        return f"{block.text}\n"
    if isinstance(block, Bullets):
        return "".join(f"- {item}\n" for item in block.items)
    if isinstance(block, Table):
        return markdown_table([list(line) for line in block.body], list(block.headers)) + "\n"
    if isinstance(block, Ranking):
        return _table(block.rows) + "\n"
    if isinstance(block, Details):
        return _details(block.rows)
    assert isinstance(block, Image)
    return f"![{block.alt}]({block.path})\n"


def render(records: list[RunRecord], audits: list[AuditSummary] | None = None,
           sources: Sources | None = None) -> tuple[str, dict[str, bytes]]:
    """(markdown, {plot path relative to the board's folder: PNG bytes}); `audits` oldest first;
    `sources` default: the project's own board."""
    board = prepare(records, audits)
    blocks = document(board, sources or Sources.committed(len(records)))
    return "\n".join(block_text(block) for block in blocks).rstrip() + "\n", board.files


def write(records: list[RunRecord], audits: list[AuditSummary], sources: Sources) -> tuple[Path, list[Path]]:
    """Write LEADERBOARD.md and its plots into `sources.root`; plots no longer referenced are removed."""
    results_root = sources.root
    markdown, files = render(records, audits, sources)
    for name, content in sorted(files.items()):
        write_if_changed(results_root / name, content)
    for stale in sorted((results_root / "plots").glob("*.png")):
        if f"plots/{stale.name}" not in files:
            stale.unlink()
    path = results_root / "LEADERBOARD.md"
    write_if_changed(path, markdown.encode())
    return path, [results_root / name for name in sorted(files)]
