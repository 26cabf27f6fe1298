"""`bench campaign import`: merge a GPU campaign's archives (benchmarks/gpu_campaign.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

CAMPAIGN_EXAMPLES = """examples:
  bench campaign import campaign-out/campaign-results.tar.gz
  bench campaign import campaign-out/campaign-results.tar.gz campaign-out/campaign-checkpoints.tar.gz
"""


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("campaign", help="merge what a GPU campaign sent back",
                       epilog=CAMPAIGN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="verb", required=True, parser_class=type(p))
    what = ("validate and merge campaign archives: run records into --results-dir, full-budget checkpoints "
            "into checkpoints/<dataset>-<budget>/, GPU reports into results/gpu/; then rebuild the table and "
            "leaderboard. The archives are read as untrusted and nothing is written unless all of them pass; "
            "nothing is overwritten.")
    imp = verbs.add_parser("import", help=what, description=what, epilog=CAMPAIGN_EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    imp.add_argument("archives", nargs="+", type=Path, metavar="ARCHIVE",
                     help="campaign-results.tar.gz and/or campaign-checkpoints.tar.gz from a campaign's --out")
    imp.add_argument("--results-dir", type=Path, default=Path("results/runs"), help="where the records go "
                     "(default results/runs)")
    imp.add_argument("--checkpoint-dir", type=Path, default=Path("checkpoints"), help="where full-budget "
                     "checkpoints go, under <dataset>-<budget>/ (default checkpoints)")
    imp.set_defaults(func=_cmd_import)


def _cmd_import(args: argparse.Namespace) -> int:
    from bench.campaign import import_campaign

    done = import_campaign(args.archives, args.results_dir, args.checkpoint_dir)
    print(f"imported {done.records_new} records ({done.records_present} already present), "
          f"{len(done.checkpoints)} checkpoints, {len(done.reports)} GPU reports; leaderboard rebuilt")
    for path in done.checkpoints:
        print(f"  {path}")
    return 0
