"""Rebuild the files derived from the run records: results.csv, LEADERBOARD.md and its plots.

Where they go (`derived_root`): a records folder named `runs` keeps them beside it (results/runs →
results/results.csv, results/LEADERBOARD.md, results/plots/, results/audits/); any other folder
keeps them inside itself, so two results folders never share or overwrite each other's table.
Rebuilds hold a lock and replace files atomically, so concurrent runs leave every derived file
complete and current.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError
from bench.files import ensure_writable_dir
from bench.records.run_record import load_run_records
from bench.reporting.table import build_table, results_lock, write_table


@dataclass(frozen=True)
class Derived:
    table: Path
    leaderboard: Path | None
    plots: list[Path]
    records: int
    html: Path | None = None  # LEADERBOARD.html, when asked for


def derived_root(runs_dir: Path) -> Path:
    """The folder of the files derived from the records in `runs_dir`."""
    return runs_dir.parent if runs_dir.name == "runs" else runs_dir


def rebuild(runs_dir: Path, *, with_leaderboard: bool = True, with_html: bool = False) -> Derived:
    root = derived_root(runs_dir)
    if not runs_dir.is_dir():
        raise BenchError(f"no results folder at {runs_dir}")
    ensure_writable_dir(root, "the folder of the derived files")
    try:
        with results_lock(root):
            records = load_run_records(runs_dir)  # a bad record raises here, before anything is written
            table_path = root / "results.csv"
            write_table(build_table(records), table_path)
            if not with_leaderboard:
                return Derived(table_path, None, [], len(records))
            from bench.reporting import markdown  # matplotlib: only when plots are made

            board, plot_files = markdown.write(records, root)
            page = None
            if with_html:
                from bench.reporting import html as leaderboard_html

                page = leaderboard_html.write(records, root)
    except OSError as exc:
        raise BenchError(f"cannot write the derived files in {root} ({exc.strerror}: {exc.filename})") from None
    return Derived(table_path, board, plot_files, len(records), page)
