"""Rebuild the files derived from the run records: results.csv, LEADERBOARD.md and its plots.

Where they go (`derived_root`): a records folder named `runs` keeps them beside it (results/runs →
results/results.csv, results/LEADERBOARD.md, results/plots/, results/audits/); any other folder
keeps them inside itself, so two results folders never share or overwrite each other's table.
`with_committed` ranks a folder's records beside the suite's committed ones, read in place (never
copied): the header names both folders, and links to committed audit reports lead to them.
Rebuilds hold a lock and replace files atomically, so concurrent runs leave every derived file
complete and current.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from bench.auditing.report import AuditSummary, load_audits
from bench.errors import BenchError
from bench.files import ensure_writable_dir
from bench.records.run_record import RunRecord, load_run_records
from bench.records.schema import REPO_ROOT
from bench.reporting.document import Sources, committed_folder, own_folder
from bench.reporting.table import build_table, results_lock, write_table

COMMITTED_RUNS = REPO_ROOT / "results" / "runs"


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


def _committed_beside(runs_dir: Path, root: Path, records: list[RunRecord]
                      ) -> tuple[list[RunRecord], list[AuditSummary], int]:
    """The committed records a folder does not already hold (by file name), and the committed audits
    with their report links relative to `root`."""
    if not COMMITTED_RUNS.is_dir():
        raise BenchError(f"--with-committed: the suite's committed records are not here ({COMMITTED_RUNS}: "
                         "an installed package carries none; use a checkout of the repository)")
    if COMMITTED_RUNS.resolve() == runs_dir.resolve():
        return [], [], 0
    own = {record.file for record in records}
    committed = [record for record in load_run_records(COMMITTED_RUNS) if record.file not in own]
    folder = Path(os.path.relpath(COMMITTED_RUNS.parent / "audits", root)).as_posix()
    audits = [dataclasses.replace(audit, folder=folder) for audit in load_audits(COMMITTED_RUNS.parent / "audits")]
    return committed, audits, len(committed)


def rebuild(runs_dir: Path, *, with_leaderboard: bool = True, with_html: bool = False,
            with_committed: bool = False) -> Derived:
    root = derived_root(runs_dir)
    if not runs_dir.is_dir():
        raise BenchError(f"no results folder at {runs_dir}")
    ensure_writable_dir(root, "the folder of the derived files")
    try:
        with results_lock(root):
            records = load_run_records(runs_dir)  # a bad record raises here, before anything is written
            audits = load_audits(root / "audits")
            folders = [(own_folder(runs_dir, root), len(records))]
            if with_committed:
                more, more_audits, count = _committed_beside(runs_dir, root, records)
                records, audits = sorted(records + more, key=lambda r: r.order), sorted(audits + more_audits, key=lambda a: (a.date, a.file))
                folders.append((committed_folder(COMMITTED_RUNS), count))
            table_path = root / "results.csv"
            write_table(build_table(records), table_path)
            if not with_leaderboard:
                return Derived(table_path, None, [], len(records))
            from bench.reporting import markdown  # matplotlib: only when plots are made

            sources = Sources(tuple(folders), root)
            board, plot_files = markdown.write(records, audits, sources)
            page = None
            if with_html:
                from bench.reporting import html as leaderboard_html

                page = leaderboard_html.write(records, audits, sources)
    except OSError as exc:
        raise BenchError(f"cannot write the derived files in {root} ({exc.strerror}: {exc.filename})") from None
    return Derived(table_path, board, plot_files, len(records), page)
