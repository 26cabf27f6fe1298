"""Rebuild the files derived from the run records: results.csv, LEADERBOARD.md and its plots.

They live next to the records folder (results/runs → results/). Rebuilds hold a lock and
replace files atomically, so concurrent runs leave every derived file complete and current.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.schema import load_records
from bench.table import build_table, results_lock, write_table


@dataclass(frozen=True)
class Derived:
    table: Path
    leaderboard: Path | None
    plots: list[Path]
    records: int


def rebuild(runs_dir: Path, *, with_leaderboard: bool = True) -> Derived:
    root = runs_dir.parent
    with results_lock(root):
        records = load_records(runs_dir)  # a bad record raises here, before anything is written
        table_path = root / "results.csv"
        write_table(build_table(records), table_path)
        if not with_leaderboard:
            return Derived(table_path, None, [], len(records))
        from bench import leaderboard  # matplotlib: only when plots are made

        board, plot_files = leaderboard.write(records, root)
    return Derived(table_path, board, plot_files, len(records))
