"""`bench audit` (gradient-masking audit) and `bench inspect` (what the suite knows about a model)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.arguments import (
    add_randomized_arguments,
    dataset_help,
    non_negative_int,
    positive_int,
    seed_value,
)
from bench.cli.model_options import add_model_arguments, add_model_qualifiers

AUDIT_EXAMPLES = """examples:
  bench audit --defense ancra                       # committed checkpoint: standard vs adaptive, checks
  bench audit --defense pgd-at --n 500
  bench audit --model examples.toy_models:rounded_smallcnn --weights checkpoints/fashion-mnist/standard-smallcnn.pt
  bench audit --defense spat --standard fgsm,pgd --adaptive spat-scaled,square-long:queries=2000
  bench audit --defense pgd-at --binarization-attacks pgd:steps=1,random_start=false   # a weak attack fails it
exit status: 0 no sign of masking, 1 a check failed (verdict says which), 2 bad input
"""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default=None, help=dataset_help())
    p.add_argument("--data-dir", type=Path, help="folder with the dataset files")
    p.add_argument("--norm", "--threat", dest="norm", help="threat model: linf (Linf) or l2 (L2); default: the "
                   "dataset's default. Also picks the RobustBench zoo (robustbench:NAME)")
    p.add_argument("--eps", help="perturbation budget, e.g. 0.1 or 8/255")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")


def add_audit(sub: argparse._SubParsersAction) -> None:
    from bench.attacks import format_attacks
    from bench.auditing.binarization import BinarizationSettings
    from bench.auditing.runner import (
        BASELINE_ATTACKS,
        BINARIZATION_ATTACKS,
        STANDARD_ATTACKS,
        STRENGTH_LADDER,
    )

    standard, baseline, strength, binarization = (format_attacks(s) for s in (
        STANDARD_ATTACKS, BASELINE_ATTACKS, STRENGTH_LADDER, BINARIZATION_ATTACKS))

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
    p.add_argument("--standard", default=standard, help=f"standard attacks (default {standard})")
    p.add_argument("--adaptive", default="adaptive",
                   help="adaptive attacks (default: `adaptive` = the defense's own + transfer + long Square)")
    p.add_argument("--baseline", default=baseline,
                   help=f"baseline every attack must beat (default {baseline}: 1000 random draws of the "
                   "ε-ball per point; noise:draws=N)")
    p.add_argument("--strength", default=strength,
                   help=f"strength ladder run when none is recorded (default {strength})")
    p.add_argument("--binarization-points", type=non_negative_int, default=BinarizationSettings.points,
                   help=f"binarization test tasks, one per clean-correct audit point (default "
                   f"{BinarizationSettings.points}; 0 skips the test)")
    p.add_argument("--binarization-attacks", default=binarization,
                   help=f"attacks the binarization test runs (default {binarization})")
    p.add_argument("--results-dir", type=Path, default=Path("results/runs"))
    p.add_argument("--audits-dir", type=Path, default=None, help="default: audits/ beside the derived files of --results-dir (results/runs → results/audits)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_randomized_arguments(p, "audit it anyway: eot-pgd joins the adaptive attacks, predictions are majority "
                             "votes (recorded as a warning)")
    p.set_defaults(func=_cmd_audit, attack=None, resume=False)


def _cmd_audit(args: argparse.Namespace) -> int:
    from bench.api import audit_and_publish
    from bench.attacks import parse_attacks
    from bench.auditing import report as audit_report
    from bench.auditing.binarization import BinarizationSettings
    from bench.auditing.runner import AuditConfig, Verdict
    from bench.cli.run_config import run_config
    from bench.files import ensure_writable_dir
    from bench.reporting.derived import derived_root

    args.attack = args.standard
    run = run_config(args)
    binarization = BinarizationSettings(points=args.binarization_points) if args.binarization_points else None
    cfg = AuditConfig(run, standard=run.attack_specs, adaptive=parse_attacks(args.adaptive),
                      baseline=parse_attacks(args.baseline), strength=parse_attacks(args.strength),
                      audits_dir=args.audits_dir or derived_root(run.results_dir) / "audits",
                      binarization=binarization, binarization_attacks=parse_attacks(args.binarization_attacks))
    ensure_writable_dir(run.results_dir, "--results-dir")  # named as the user typed them
    ensure_writable_dir(cfg.audits_dir, "--audits-dir")
    result = audit_and_publish(cfg)
    print(audit_report.render(result, cfg))
    print(f"report: {result.report}")
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
    p.set_defaults(func=_cmd_inspect, model=None)


def _cmd_inspect(args: argparse.Namespace) -> int:
    from bench.api import inspect
    from bench.cli.model_options import model_spec
    from bench.data import DATASETS
    from bench.evaluation.config import RunConfig
    from bench.evaluation.resolve import name_model, resolve
    from bench.threat import Norm

    named = name_model(args.target)
    dataset = RunConfig.resolve_dataset(args.dataset, named.checkpoint)
    norm = Norm.parse(args.norm) if args.norm else DATASETS.get(dataset).default_threat().norm
    resolved = resolve(dataset, norm.value, defense=named.defense, checkpoint=named.checkpoint,
                       model=model_spec(args, named.model), sha256=args.sha256)
    found = inspect(resolved, dataset=dataset, norm=args.norm, eps=args.eps, device=args.device,
                    data_dir=args.data_dir, allow_randomized=args.allow_randomized)
    print(found)
    return 0 if found.guards_passed else 1
