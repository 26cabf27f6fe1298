"""`bench audit` (gradient-masking audit) and `bench inspect` (what the suite knows about a model)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.cli.arguments import add_randomized_arguments, non_negative_int, positive_int, seed_value
from bench.cli.model_options import add_model_arguments, add_model_qualifiers
from bench.errors import BenchError

AUDIT_EXAMPLES = """examples:
  bench audit --defense ancra                       # committed checkpoint: standard vs adaptive, checks
  bench audit --defense pgd-at --n 500
  bench audit --model examples.toy_models:rounded_smallcnn --weights checkpoints/fashion-mnist/standard-smallcnn.pt
  bench audit --defense spat --standard fgsm,pgd --adaptive spat-scaled,square-long:queries=2000
  bench audit --defense pgd-at --binarization-attacks pgd:steps=1,random_start=false   # a weak attack fails it
exit status: 0 no sign of masking, 1 a check failed (verdict says which), 2 bad input
"""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default=None, help="fashion-mnist (default), mnist, cifar10, cifar100, svhn")
    p.add_argument("--data-dir", type=Path, help="folder with the dataset files")
    p.add_argument("--norm", "--threat", dest="norm", help="threat model: linf (Linf) or l2 (L2); default: the "
                   "dataset's default. Also picks the RobustBench zoo (robustbench:NAME)")
    p.add_argument("--eps", help="perturbation budget, e.g. 0.1 or 8/255")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")


def add_audit(sub: argparse._SubParsersAction) -> None:
    from bench.binarization import BinarizationSettings
    from bench.masking_audit import BASELINE_ATTACKS, BINARIZATION_ATTACKS, STANDARD_ATTACKS, STRENGTH_LADDER

    p = sub.add_parser("audit", help="gradient-masking audit: standard vs adaptive attacks, checks, verdict",
                       description="Runs (or reuses from records) the standard and the adaptive attacks, "
                       "an ε ladder and a strength ladder when none is recorded, probes the model with "
                       "AutoAttack's checks and ours, runs the binarization test (can the attacks find "
                       "adversarial examples that provably exist?), and writes a markdown report + JSON "
                       "to --audits-dir.",
                       epilog=AUDIT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p)
    _common(p)
    p.add_argument("--n", type=positive_int, default=200, help="test points (default 200, the first n)")
    p.add_argument("--sample-seed", type=seed_value, help="draw the points at random with this seed")
    p.add_argument("--seed", type=seed_value, default=0)
    p.add_argument("--batch-size", type=positive_int, default=500)
    p.add_argument("--standard", default=STANDARD_ATTACKS, help=f"standard attacks (default {STANDARD_ATTACKS})")
    p.add_argument("--adaptive", default="adaptive",
                   help="adaptive attacks (default: `adaptive` = the defense's own + transfer + long Square)")
    p.add_argument("--baseline", default=BASELINE_ATTACKS,
                   help=f"baseline every attack must beat (default {BASELINE_ATTACKS}: 1000 random draws of the "
                   "ε-ball per point; noise:draws=N)")
    p.add_argument("--strength", default=STRENGTH_LADDER,
                   help=f"strength ladder run when none is recorded (default {STRENGTH_LADDER})")
    p.add_argument("--binarization-points", type=non_negative_int, default=BinarizationSettings.points,
                   help=f"binarization test tasks, one per clean-correct audit point (default "
                   f"{BinarizationSettings.points}; 0 skips the test)")
    p.add_argument("--binarization-attacks", default=BINARIZATION_ATTACKS,
                   help=f"attacks the binarization test runs (default {BINARIZATION_ATTACKS})")
    p.add_argument("--results-dir", type=Path, default=Path("results/runs"))
    p.add_argument("--audits-dir", type=Path, default=None, help="default: audits/ beside the derived files of --results-dir (results/runs → results/audits)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_randomized_arguments(p, "audit it anyway: eot-pgd joins the adaptive attacks, predictions are majority "
                             "votes (recorded as a warning)")
    p.set_defaults(func=_cmd_audit, attack=None, resume=False)


def _cmd_audit(args: argparse.Namespace) -> int:
    from bench import audit_report
    from bench.binarization import BinarizationSettings
    from bench.cli.run_config import run_config
    from bench.derived import derived_root, rebuild
    from bench.files import ensure_writable_dir
    from bench.masking_audit import AuditConfig, Verdict, run_audit

    args.attack = args.standard
    run = run_config(args)
    binarization = BinarizationSettings(points=args.binarization_points) if args.binarization_points else None
    cfg = AuditConfig(run, standard=args.standard, adaptive=args.adaptive, baseline=args.baseline, strength=args.strength,
                      audits_dir=args.audits_dir or derived_root(run.results_dir) / "audits",
                      binarization=binarization, binarization_attacks=args.binarization_attacks)
    ensure_writable_dir(run.results_dir, "--results-dir")  # both before any attack runs
    ensure_writable_dir(cfg.audits_dir, "--audits-dir")
    result = run_audit(cfg)
    md, _ = audit_report.write(result, cfg)
    print(audit_report.render(result, cfg))
    print(f"report: {md}")
    if result.records:
        try:
            rebuild(run.results_dir, with_leaderboard=True)
        except BenchError as exc:
            print(f"warning: results.csv / leaderboard not rebuilt: {exc}", file=sys.stderr)
    return 0 if result.verdict is Verdict.CONSISTENT else 1


def add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="what the suite knows about a model: architecture, parameters, "
                       "classes, normalization, hash, guards",
                       epilog="MODEL: a registered defense, a `bench train` checkpoint, robustbench:NAME, "
                       "package.module:factory (with --weights) or a TorchScript / torch.export file. "
                       "exit status: 0 the guards pass, 1 a guard failed (the report says which), 2 bad input")
    p.add_argument("target", metavar="MODEL")
    add_model_qualifiers(p)
    _common(p)
    add_randomized_arguments(p, "report a randomized model as a warning")
    p.set_defaults(func=_cmd_inspect)


def _cmd_inspect(args: argparse.Namespace) -> int:
    from bench.cli.run_config import run_config
    from bench.inspect_model import describe
    from bench.resolve import name_model

    named = name_model(args.target)
    args.defense, args.checkpoint, args.model = named.defense, named.checkpoint, named.model
    args.attack, args.resume, args.quiet, args.n, args.sample_seed = "adaptive", False, True, None, None
    args.seed, args.batch_size, args.results_dir = 0, 500, Path("results/runs")
    failed = False
    for key, value in describe(run_config(args)):
        print(f"{key:20s} {value}")
        failed |= key == "guards" and value.startswith("FAILED")
    return 1 if failed else 0
