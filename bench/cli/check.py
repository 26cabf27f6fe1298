"""`bench check`: the CI regression gate."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.cli.arguments import dataset_help, label_value, positive_int, seed_value
from bench.cli.model_options import MODEL_HELP, add_model_qualifiers
from bench.data import DEFAULT_DATASET

CHECK_EXAMPLES = """examples:
  bench check                                       # every committed checkpoint vs results/baselines/
  bench check --defense ancra --defense pgd-at      # a subset
  bench check --update-baseline --reason "PGD step size now ε/4 per the paper"   # re-bless, with history
  bench check --checkpoint ckpt/mine.pt --baselines ci/baselines                # your own CI
  bench check --baselines ci/baselines                               # exactly the baselines in ci/baselines
  bench check --model mypkg.nets:make_net --weights w.pt --baselines ci/baselines   # your own architecture
exit status: 0 pass, 1 a measure moved beyond the statistical rule (report says what), 2 bad input
"""

def add(sub: argparse._SubParsersAction) -> None:
    from bench.attacks import format_attacks
    from bench.gate import ALPHA, COMMITTED_BASELINES, NOISE_RATE, GateProtocol

    default = GateProtocol()
    p = sub.add_parser("check", help="CI regression gate: re-evaluate checkpoints and compare per-example "
                       "flags with committed baselines",
                       description=f"Red when a measure (clean or an attack) has more flipped points than "
                       f"numerical noise explains (rate {NOISE_RATE:.1%}, α={ALPHA}), when flips lean one way "
                       "(exact sign test, also pooled over checkpoints), or when a checkpoint's sha256 changed.",
                       epilog=CHECK_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default=DEFAULT_DATASET, help=dataset_help())
    p.add_argument("--defense", action="append", default=[], help="a registered defense (repeatable)")
    p.add_argument("--checkpoint", action="append", default=[], type=Path,
                   help="a checkpoint file with sidecar; its label is the file stem (repeatable)")
    p.add_argument("--model", help=f"{MODEL_HELP}; its baseline pins the weights' sha256 and the declared input, "
                   "and the factory it names; it is checked only when --model is given again (a file never names "
                   "code to import)")
    p.add_argument("--label", type=label_value, help="the baseline's name for --model (default: the loader's label, e.g. the factory)")
    add_model_qualifiers(p)
    p.add_argument("--baselines", type=Path, default=COMMITTED_BASELINES,
                   help="the baselines folder (default: the project's, which must also hold one for every committed "
                   "checkpoint); with no model named, exactly the baselines in it are gated")
    protocol = "each baseline's own protocol; given and different from it, the check is red (re-bless to change it)"
    p.add_argument("--n", type=positive_int, help=f"test points (default: {protocol}; a new baseline: {default.n})")
    attacks = format_attacks(default.attacks)
    p.add_argument("--attack", help=f"attacks (default: the same; a new baseline: {attacks})")
    p.add_argument("--seed", type=seed_value, help=f"(default: the same; a new baseline: {default.seed})")
    p.add_argument("--update-baseline", action="store_true",
                   help="re-bless: write the baselines of exactly the models named (none named: those in --baselines)")
    p.add_argument("--reason", default="", help="why the baseline changes (required with --update-baseline)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_check)


def _cmd_check(args: argparse.Namespace) -> int:
    from bench import api
    from bench.cli.model_options import model_spec

    spec = model_spec(args)
    if args.update_baseline:
        for path in api.gate_update(args.defense, args.checkpoint, spec, reason=args.reason, **_gate_options(args)):
            print(f"wrote {path}")
        return 0
    report = api.gate_check(args.defense, args.checkpoint, spec, **_gate_options(args))
    print(report)
    return 0 if report.passed else 1


def _gate_options(args: argparse.Namespace) -> dict[str, Any]:
    return dict(dataset=args.dataset, baselines=args.baselines, n=args.n, attacks=args.attack, seed=args.seed,
                label=args.label, sha256=args.sha256, quiet=args.quiet)
