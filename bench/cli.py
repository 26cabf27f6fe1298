"""`bench` command line: run (evaluate), train, ls, data. Strings are parsed here and nowhere else."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from bench.errors import BenchError

RUN_EXAMPLES = """examples:
  bench run --defense pgd-at --attack aa                    # committed checkpoint, AutoAttack
  bench run --defense ancra --attack aa                     # any registered defense (`bench ls defenses`)
  bench run --defense pgd-at --attack fgsm,pgd,cw,aa --n 1000
  bench run --checkpoint checkpoints/fashion-mnist/standard-smallcnn.pt --attack pgd:steps=50,restarts=2
  bench run --defense pgd-at --attack pgd --eps 0.2 --json   # one JSON summary on stdout
  bench run --defense pgd-at --attack aa --resume            # continue an interrupted run
"""

TRAIN_EXAMPLES = """examples:
  bench train --list
  bench train --defense pgd-at --dataset fashion-mnist       # writes checkpoints/fashion-mnist/pgd-at-smallcnn.pt
  bench train --defense pgd-at --epochs 2 --out /tmp/try.pt  # override any recipe field
  bench train --defense pgd-at --resume                      # continue after an interruption
  bench train --defense ancra-mart --param beta=6,zeta=2     # the method's own hyper-parameters
  bench train --defense afd --init runs/my-natural.pt        # fine-tune another natural checkpoint
  torchrun --nproc-per-node 2 -m bench train --defense trades --out /tmp/trades.pt   # data-parallel
"""


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="evaluate a checkpoint with a set of attacks",
                       epilog=RUN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--defense", help="registered defense: its committed checkpoint for --dataset")
    model.add_argument("--checkpoint", type=Path, help="a checkpoint written by `bench train` (with sidecar)")
    p.add_argument("--sha256", help="expected sha256 of the checkpoint file")
    p.add_argument("--dataset", default=None, help="fashion-mnist (default), mnist, cifar10, cifar100, svhn")
    p.add_argument("--data-dir", type=Path, help="folder with the dataset files")
    p.add_argument("--attack", default="fgsm,pgd,cw,aa",
                   help="comma-separated attacks with optional parameters, e.g. pgd:steps=50,restarts=2 "
                        "(default: fgsm,pgd,cw,aa; `bench ls attacks` lists them)")
    p.add_argument("--norm", help="linf or l2 (default: the dataset's default threat model)")
    p.add_argument("--eps", help="perturbation budget, e.g. 0.1 or 8/255")
    p.add_argument("--n", type=int, help="number of test points (default: all)")
    p.add_argument("--sample-seed", type=int, help="draw the --n points at random with this seed "
                   "instead of taking the first n")
    p.add_argument("--seed", type=int, default=0, help="seed of the attacks' randomness (default 0)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--results-dir", type=Path, default=Path("results/runs"))
    p.add_argument("--resume", action="store_true", help="continue an interrupted run with the same settings")
    p.add_argument("--allow-randomized", action="store_true",
                   help="evaluate a randomized model anyway (recorded as a warning)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from bench.config import RunConfig
    from bench.harness import evaluate
    from bench.report import format_summary

    cfg = RunConfig.from_cli(args)
    result = evaluate(cfg)
    if args.json:
        print(json.dumps(result.summary(), sort_keys=True))
    else:
        print(format_summary(result))
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a registered defense with its recipe",
                       epilog=TRAIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list", action="store_true", help="list defenses and their recipes")
    p.add_argument("--defense")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--out", type=Path, help="checkpoint path (default checkpoints/<dataset>/<defense>-<arch>.pt)")
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--max-train-points", type=int, help="train on fewer points (smoke tests)")
    recipe = p.add_argument_group("recipe overrides (any field; `bench train --list` shows the recipes)")
    for flag, kind in RECIPE_FLAGS:
        recipe.add_argument(f"--{flag}", type=kind)
    recipe.add_argument("--param", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                        help="the method's own hyper-parameters, e.g. --param beta=5 (repeatable)")
    p.set_defaults(func=_cmd_train)


RECIPE_FLAGS: tuple[tuple[str, type], ...] = (
    ("arch", str), ("epochs", int), ("batch-size", int), ("lr", float), ("momentum", float),
    ("weight-decay", float), ("eps", float), ("attack-steps", int), ("train-points", int), ("init", str),
    ("seed", int))


def _parse_params(items: list[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for item in items:
        for pair in filter(None, (t.strip() for t in item.split(","))):
            key, sep, value = pair.partition("=")
            if not sep or not key or not value:
                raise BenchError(f"bad --param {pair!r}: write KEY=VALUE")
            params[key.strip()] = value.strip()
    return params or None


def _print_defenses() -> None:
    import dataclasses

    from defenses import DEFENSES

    for name, defense in DEFENSES.items():
        print(f"{name}  [{defense.paper}]\n    {defense.summary}\n    variant: {defense.variant}")
        if defense.params is not None:
            knobs = ", ".join(f"{f.name}={f.default}" for f in dataclasses.fields(defense.params))
            print(f"    params: {knobs}")
        for dataset, recipe in defense.recipes.items():
            attack = (f", ε={recipe.eps:.4g} PGD-{recipe.attack_steps}" if recipe.eps else "")
            extra = f", init={recipe.init}" if recipe.init else ""
            points = f" on {recipe.train_points} points" if recipe.train_points else ""
            own = f", params {recipe.params}" if recipe.params else ""
            print(f"    {dataset}: {recipe.arch}, {recipe.epochs} epochs{points}, batch {recipe.batch_size}, "
                  f"lr {recipe.lr:g} ({recipe.schedule.value} {list(recipe.milestones) or ''}), "
                  f"wd {recipe.weight_decay:g}{attack}{extra}{own}")


def _cmd_train(args: argparse.Namespace) -> int:
    from defenses import trainer

    if args.list:
        _print_defenses()
        return 0
    if not args.defense:
        raise BenchError("bench train needs --defense NAME (or --list)")
    overrides = {flag.replace("-", "_"): getattr(args, flag.replace("-", "_")) for flag, _ in RECIPE_FLAGS}
    overrides["params"] = _parse_params(args.param)
    job = trainer.resolve_job(args.defense, args.dataset, overrides, args.out, data_dir=args.data_dir,
                              resume=args.resume, quiet=args.quiet, max_train_points=args.max_train_points)
    sidecar = trainer.train(job)
    if not sidecar:  # a torchrun rank other than 0: rank 0 wrote and reports
        return 0
    best = sidecar["held_out"]
    print(f"wrote {job.out} (sha256 {sidecar['sha256'][:16]}…) in {sidecar['train_seconds']:.0f} s; "
          f"selected epoch {best['epoch']} on held-out data: "
          + ", ".join(f"{k} {v:.3f}" for k, v in best.items() if k != "epoch"))
    return 0


def _add_ls(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ls", help="list attacks, defenses or datasets")
    p.add_argument("what", choices=["attacks", "defenses", "datasets"])
    p.set_defaults(func=_cmd_ls)


def _cmd_ls(args: argparse.Namespace) -> int:
    if args.what == "attacks":
        from bench.attacks import ATTACKS

        for name, entry in ATTACKS.items():
            print(f"{name:10s} {entry.summary}")
    elif args.what == "defenses":
        from defenses import DEFENSES

        for name, defense in DEFENSES.items():
            print(f"{name:10s} {defense.summary} (datasets: {', '.join(defense.recipes)})")
    else:
        from bench.data import DATASETS

        for name, spec in DATASETS.items():
            threats = "; ".join(t.label for t in spec.threat_models)
            print(f"{name:14s} {spec.num_classes} classes, {spec.shape}, default threat: {threats}")
    return 0


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="download a dataset with torchvision (needs network)")
    p.add_argument("action", choices=["fetch"])
    p.add_argument("dataset")
    p.add_argument("--data-dir", type=Path, default=None)
    p.set_defaults(func=_cmd_data)


def _cmd_data(args: argparse.Namespace) -> int:
    from bench import data

    target = args.data_dir or data.DEFAULT_DATA_DIR
    data.fetch(args.dataset, target)
    print(f"{args.dataset} is in {target}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="Train robust classifiers and evaluate "
                                     "them with FGSM, PGD, C&W and the official AutoAttack.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    adders: list[Callable[[argparse._SubParsersAction], None]] = [_add_run, _add_train, _add_ls, _add_data]
    for add in adders:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command with --resume to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
