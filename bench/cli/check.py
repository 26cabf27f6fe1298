"""`bench check`: the CI regression gate."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from bench.cli.arguments import positive_int, seed_value
from bench.cli.model_options import MODEL_HELP, add_model_qualifiers

if TYPE_CHECKING:
    from bench.gate import Target

CHECK_EXAMPLES = """examples:
  bench check                                       # every committed checkpoint vs results/baselines/
  bench check --defense ancra --defense pgd-at      # a subset
  bench check --update-baseline --reason "PGD step size now ε/4 per the paper"   # re-bless, with history
  bench check --checkpoint ckpt/mine.pt --baselines ci/baselines                # your own CI
  bench check --model mypkg.nets:make_net --weights w.pt --baselines ci/baselines   # your own architecture
exit status: 0 pass, 1 a measure moved beyond the statistical rule (report says what), 2 bad input
"""

def add(sub: argparse._SubParsersAction) -> None:
    from bench.gate import ALPHA, NOISE_RATE, GateProtocol

    default = GateProtocol()
    p = sub.add_parser("check", help="CI regression gate: re-evaluate checkpoints and compare per-example "
                       "flags with committed baselines",
                       description=f"Red when a measure (clean or an attack) has more flipped points than "
                       f"numerical noise explains (rate {NOISE_RATE:.1%}, α={ALPHA}), when flips lean one way "
                       "(exact sign test, also pooled over checkpoints), or when a checkpoint's sha256 changed.",
                       epilog=CHECK_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--defense", action="append", default=[], help="a registered defense (repeatable)")
    p.add_argument("--checkpoint", action="append", default=[], type=Path,
                   help="a checkpoint file with sidecar; its label is the file stem (repeatable)")
    p.add_argument("--model", help=f"{MODEL_HELP}; its baseline pins the weights' sha256 and the declared input, "
                   "and a later `bench check` without arguments finds it again (never with --trust-checkpoint)")
    p.add_argument("--label", help="the baseline's name for --model (default: the loader's label, e.g. the factory)")
    add_model_qualifiers(p)
    p.add_argument("--baselines", type=Path, default=Path("results/baselines"))
    p.add_argument("--n", type=positive_int, default=default.n, help=f"test points (default {default.n})")
    p.add_argument("--attack", default=default.attacks, help=f"attacks (default {default.attacks})")
    p.add_argument("--seed", type=seed_value, default=default.seed)
    p.add_argument("--update-baseline", action="store_true", help="re-bless: write new baselines")
    p.add_argument("--reason", default="", help="why the baseline changes (required with --update-baseline)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_check)


def _cmd_check(args: argparse.Namespace) -> int:
    from bench import gate

    protocol = gate.GateProtocol(n=args.n, attacks=args.attack, seed=args.seed)
    user_model = _check_arguments(args)
    problems: list[str] = []
    if args.defense or args.checkpoint or user_model:
        targets = [gate.Target(d, args.dataset, defense=d) for d in args.defense]
        targets += [gate.Target(c.stem, args.dataset, checkpoint=c) for c in args.checkpoint]
        targets += [user_model] if user_model else []
    else:
        targets, problems = gate.default_targets(args.dataset, args.baselines)
    if args.update_baseline:
        for path in gate.update(targets, args.baselines, protocol, args.reason, quiet=args.quiet):
            print(f"wrote {path}")
        return 0
    result = gate.check(targets, args.baselines, protocol, problems, quiet=args.quiet)
    print(gate.format_report(result, protocol, args.dataset))
    return 1 if result.failed else 0


def _check_arguments(args: argparse.Namespace) -> Target | None:
    """Names, files and folders first: a typo is a usage error (exit 2), never a red gate (exit 1).
    Returns the --model target, loaded once here so that a model that does not load is exit 2."""
    from bench.attacks import build_attacks
    from bench.cli.model_options import model_spec
    from bench.committed import attack_context, committed_checkpoint
    from bench.data import DATASETS
    from bench.errors import BenchError
    from bench.files import ensure_writable_dir
    from bench.untrusted import readable_file
    from defenses import DEFENSES

    dataset = DATASETS.get(args.dataset)
    spec_norm = dataset.default_threat().norm.value
    build_attacks(args.attack, dataset.default_threat().norm, attack_context(args.dataset))
    for name in args.defense:
        DEFENSES.get(name)
        path = committed_checkpoint(args.dataset, name)
        if path is None or not path.is_file():
            raise BenchError(f"defense {name!r} has no committed {args.dataset} checkpoint to check")
    for path in args.checkpoint:
        readable_file(path, "--checkpoint")
    if args.label is not None and args.model is None:
        raise BenchError("--label names a --model's baseline: give --model too")
    spec = model_spec(args)
    target = None
    if spec is not None:
        from bench.gate import Target
        from bench.resolve import resolve

        loaded = resolve(args.dataset, spec_norm, model=spec, sha256=args.sha256)
        target = Target(args.label or loaded.label, args.dataset, model=spec)
    if args.baselines.exists() and not args.baselines.is_dir():
        raise BenchError(f"--baselines {args.baselines} is a file, not a folder")
    if args.update_baseline:  # gate.update insists on a reason before it evaluates anything
        ensure_writable_dir(args.baselines / args.dataset, "--baselines")
    elif not args.baselines.is_dir():
        raise BenchError(f"no baselines folder at {args.baselines}: create baselines with "
                         "`bench check --update-baseline --reason ...`")
    return target
