"""`bench results` and `bench leaderboard`: the files derived from the run records."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

RESULTS_EXAMPLES = """examples:
  bench results                                   # every (run, attack) row, markdown
  bench results --defense ancra --attack aa       # filter
  bench results --dataset fashion-mnist --format csv > table.csv
  bench leaderboard                               # rewrite results/LEADERBOARD.md, plots, results.csv
"""

LEADERBOARD_EXAMPLES = """examples:
  bench leaderboard                                     # results/LEADERBOARD.md, plots, results.csv
  bench leaderboard --html                              # and results/LEADERBOARD.html
  bench leaderboard --results-dir mine --with-committed # mine/LEADERBOARD.md: your runs beside the committed ones
"""


def add_results(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("results", help="print the result table derived from the run records",
                       epilog=RESULTS_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results-dir", type=Path, default=Path("results/runs"), help="the run records")
    p.add_argument("--dataset")
    p.add_argument("--defense")
    p.add_argument("--attack", help="an attack label as recorded (e.g. pgd, aa, pgd:steps=50) or worst_case")
    p.add_argument("--label", help="a checkpoint label (defense name or checkpoint file stem)")
    p.add_argument("--purpose", choices=["evaluation", "eps-sweep"], help="evaluation runs feed the tables, "
                   "eps-sweep runs the ε curves")
    p.add_argument("--format", choices=["md", "csv", "json"], default="md")
    p.add_argument("--all-columns", action="store_true", help="markdown: every column, not the summary ones")
    p.set_defaults(func=_cmd_results)


SUMMARY_COLUMNS = ["date", "dataset", "norm", "eps", "label", "arch", "checkpoint_sha256", "attack",
                   "protocol", "n", "clean_accuracy", "robust_accuracy", "ci95_low", "ci95_high", "seconds"]


def _cmd_results(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from bench.records.run_record import load_run_records
    from bench.reporting.table import build_table, filter_table, to_csv

    table = filter_table(build_table(load_run_records(args.results_dir)), dataset=args.dataset, defense=args.defense,
                         attack=args.attack, label=args.label, purpose=args.purpose)
    if args.format == "csv":
        sys.stdout.write(to_csv(table))
    elif args.format == "json":
        print(table.to_json(orient="records", indent=1))
    else:
        shown = table if args.all_columns else table[SUMMARY_COLUMNS].assign(
            checkpoint_sha256=table["checkpoint_sha256"].str[:12])
        print(tabulate(shown.values.tolist(), headers=list(shown.columns), tablefmt="github",
                       floatfmt=".4g", missingval=""))
    return 0


def add_leaderboard(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("leaderboard", help="regenerate results/LEADERBOARD.md, its plots and results.csv",
                       epilog=LEADERBOARD_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results-dir", type=Path, default=Path("results/runs"),
                   help="the run records (default results/runs); derived files go beside a folder named runs "
                        "(results/), inside any other")
    p.add_argument("--with-committed", action="store_true",
                   help="rank the records of --results-dir beside the suite's committed ones, read in place (never "
                        "copied); the derived files go where --results-dir's go")
    p.add_argument("--html", action="store_true", help="also write LEADERBOARD.html: the same tables and details as "
                   "one self-contained page (plots inlined, columns sortable; #sort=COLUMN[:desc] opens it sorted)")
    p.set_defaults(func=_cmd_leaderboard)


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from bench.reporting.derived import derived_root, rebuild

    derived = rebuild(args.results_dir, with_html=args.html, with_committed=args.with_committed)
    print(f"{derived.leaderboard} and {derived.table} from {derived.records} records; "
          f"{len(derived.plots)} plots in {derived_root(args.results_dir) / 'plots'}"
          + (f"; {derived.html}" if derived.html else ""))
    return 0
