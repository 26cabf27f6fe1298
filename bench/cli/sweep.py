"""`bench sweep`: an attack set over every checkpoint, incrementally."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.cli.arguments import positive_int, seed_value
from bench.cli.model_options import MODEL_HELP, add_model_qualifiers, model_spec

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
    p.add_argument("--dataset", default="fashion-mnist")
    models = p.add_mutually_exclusive_group()
    models.add_argument("--checkpoints-dir", type=Path, help="every *.pt with a sidecar here, instead of the "
                        "registered defenses' committed checkpoints")
    models.add_argument("--model", help=f"instead: one user model, {MODEL_HELP}")
    add_model_qualifiers(p)
    p.add_argument("--attack", default="fgsm,pgd,cw,aa")
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
    from bench import sweep
    from bench.config import RunConfig
    from bench.data import DATASETS
    from bench.derived import rebuild
    from bench.report import format_summary
    from bench.schema import RunPurpose
    from bench.threat import parse_eps_list

    DATASETS.get(args.dataset)
    common = dict(dataset=args.dataset, attacks_text=args.attack, data_dir=args.data_dir, n=args.n,
                  sample_seed=args.sample_seed, seed=args.seed, batch_size=args.batch_size, device=args.device,
                  results_dir=args.results_dir, resume=None, quiet=args.quiet, sha256=args.sha256)
    spec = model_spec(args)
    if spec is not None:
        models: list[dict[str, Any]] = [{"model": spec}]
    elif args.checkpoints_dir:
        models = [{"checkpoint": p} for p in sweep.checkpoints_in(args.checkpoints_dir)]
    else:
        models = [{"defense": d} for d in sweep.registered_checkpoints(args.dataset)]
    if args.eps_sweep is not None:
        threats = [(RunConfig.resolve_threat(args.dataset, args.norm, str(e)), RunPurpose.EPS_SWEEP)
                   for e in parse_eps_list(args.eps_sweep)]
    else:
        threats = [(RunConfig.resolve_threat(args.dataset, args.norm, args.eps), RunPurpose.EVALUATION)]
    targets = [RunConfig(threat=threat, purpose=purpose, **model, **common)
               for model in models for threat, purpose in threats]

    def report(item: sweep.SweepItem, result: object) -> None:
        skipped = f" (already recorded: {', '.join(item.skipped)})" if item.skipped else ""
        if result is None:
            print(f"{item.label}: nothing to do{skipped}")
        else:
            print(f"{item.label}{skipped}:\n{format_summary(result)}\n")  # type: ignore[arg-type]

    sweep.run(sweep.plan(targets, args.force), report)
    derived = rebuild(args.results_dir)
    print(f"rebuilt {derived.table} and {derived.leaderboard} from {derived.records} records")
    return 0
