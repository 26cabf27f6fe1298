"""`bench sweep`: an attack set over every checkpoint, incrementally."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.attacks.specs import format_attacks
from bench.cli.arguments import dataset_help, positive_int, seed_value
from bench.cli.model_options import MODEL_HELP, add_model_qualifiers, model_spec
from bench.data import DEFAULT_DATASET
from bench.evaluation.config import STANDARD_ATTACKS

SWEEP_EXAMPLES = """examples:
  bench sweep                                          # fgsm,pgd,cw,aa over every committed fashion-mnist checkpoint
  bench sweep --attack pgd,aa --n 1000                 # what is already recorded is skipped
  bench sweep --checkpoints-dir runs/ --attack pgd     # every checkpoint (with sidecar) in a folder
  bench sweep --model mypkg.nets:make_net --weights w.pt --attack fgsm,pgd,aa-fast   # a user model
  bench sweep --attack fgsm,pgd --eps-sweep 0.05,0.1,0.2,0.3,0.5 --n 500   # ε curves for the plots
  bench sweep --force                                  # rerun even what is recorded
An interrupted sweep continues where it stopped when started again with the same options.
"""


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run an attack set over every checkpoint, skipping what is recorded",
                       epilog=SWEEP_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default=DEFAULT_DATASET, help=dataset_help())
    models = p.add_mutually_exclusive_group()
    models.add_argument("--checkpoints-dir", type=Path, help="every *.pt with a sidecar here, instead of the "
                        "registered defenses' committed checkpoints")
    models.add_argument("--model", help=f"instead: one user model, {MODEL_HELP}")
    add_model_qualifiers(p)
    p.add_argument("--attack", default=format_attacks(STANDARD_ATTACKS))
    eps = p.add_mutually_exclusive_group()
    eps.add_argument("--eps", help="perturbation budget (default: the dataset's)")
    eps.add_argument("--eps-sweep", metavar="EPS,EPS,...", help="every checkpoint at each ε (records marked "
                     "eps-sweep, for the ε-curve plots and checks)")
    p.add_argument("--norm")
    p.add_argument("--n", type=positive_int)
    p.add_argument("--sample-seed", type=seed_value)
    p.add_argument("--seed", type=seed_value, default=0)
    p.add_argument("--batch-size", type=positive_int, default=500)
    p.add_argument("--device", default="auto")
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--results-dir", type=Path, default=Path("results/runs"))
    p.add_argument("--force", action="store_true", help="rerun attacks that are already recorded")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_sweep)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from bench.api import SweepOutcome, sweep_models
    from bench.evaluation.sweep import checkpoints_in
    from bench.reporting.run_summary import format_summary
    from bench.threat import parse_eps_list

    def report(outcome: SweepOutcome) -> None:
        skipped = f" (already recorded: {', '.join(outcome.skipped)})" if outcome.skipped else ""
        if outcome.run is None:
            print(f"{outcome.label}: nothing to do{skipped}")
        else:
            print(f"{outcome.label}{skipped}:\n{format_summary(outcome.run.record, outcome.run.record_path)}\n")

    done = sweep_models([], checkpoints_in(args.checkpoints_dir) if args.checkpoints_dir else [], model_spec(args),
                        dataset=args.dataset, attacks=args.attack, eps=args.eps,
                        eps_sweep=None if args.eps_sweep is None else parse_eps_list(args.eps_sweep), norm=args.norm,
                        n=args.n, sample_seed=args.sample_seed, seed=args.seed, batch_size=args.batch_size,
                        device=args.device, data_dir=args.data_dir, results_dir=args.results_dir, sha256=args.sha256,
                        force=args.force, quiet=args.quiet, on_outcome=report)
    print(f"rebuilt {done.derived.table} and {done.derived.leaderboard} from {done.derived.records} records")
    return 0
