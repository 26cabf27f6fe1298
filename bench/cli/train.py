"""`bench train`: train a registered defense with its recipe, overrides and own hyper-parameters."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.cli.arguments import finite_float, non_negative_float, positive_int, seed_value
from bench.errors import BenchError

TRAIN_EXAMPLES = """examples:
  bench train --list
  bench train --defense pgd-at --dataset fashion-mnist --overwrite   # replaces checkpoints/fashion-mnist/pgd-at-smallcnn.pt
  bench train --defense pgd-at --epochs 2 --out /tmp/try.pt  # override any recipe field
  bench train --defense pgd-at --resume                      # continue after an interruption
  bench train --defense ancra-mart --param beta=6,zeta=2     # the method's own hyper-parameters
  bench train --defense afd --init runs/my-natural.pt        # fine-tune another natural checkpoint
  bench train --defense trades --arch mynets:wide_cnn --out mine.pt   # your own architecture
  bench train --defense trades --budget full --device cuda   # every training point, 5x the epochs (GPU)
  torchrun --nproc-per-node 2 -m bench train --defense trades --out /tmp/trades.pt   # data-parallel
"""

def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a registered defense with its recipe",
                       epilog=TRAIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list", action="store_true", help="list defenses and their recipes")
    p.add_argument("--defense")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--out", type=Path, help="checkpoint path (default checkpoints/<dataset>/<defense>-<arch>.pt)")
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint at --out (and its "
                   "sidecar); without it an existing file is refused before training starts")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--budget", default="recipe", help="training budget applied alike to every defense: recipe "
                   "(default, the committed checkpoints) or full (every training point, 5× the epochs; "
                   "written to checkpoints/<dataset>-full/)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: CUDA when available); "
                   "resume is exact on CPU, close on CUDA (its kernels are not bit-deterministic)")
    p.add_argument("--max-train-points", type=positive_int, help="train on fewer points (smoke tests)")
    recipe = p.add_argument_group("recipe overrides (any field; `bench train --list` shows the recipes)")
    helps = _recipe_help()
    for flag, kind in RECIPE_FLAGS:
        recipe.add_argument(f"--{flag}", type=kind, help=helps.get(flag))
    recipe.add_argument("--param", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                        help="the method's own hyper-parameters, e.g. --param beta=5 (repeatable)")
    p.set_defaults(func=_cmd_train)


RECIPE_FLAGS: tuple[tuple[str, Callable[[str], Any]], ...] = (
    ("arch", str), ("epochs", positive_int), ("batch-size", positive_int), ("lr", finite_float),
    ("momentum", non_negative_float), ("weight-decay", non_negative_float), ("eps", finite_float),
    ("attack-steps", positive_int), ("train-points", positive_int), ("init", str), ("seed", seed_value))


def _recipe_help() -> dict[str, str]:
    from defenses import DEFENSES

    takers = ", ".join(name for name, d in DEFENSES.items() if not d.arch_needs)
    return {"arch": "a registered architecture, or package.module:factory of your own (called with no arguments, it "
                    "returns an nn.Module mapping [0, 1] images to logits; the defenses that need nothing more of it "
                    f"train it: {takers}). Evaluate the result with --model package.module:factory --weights OUT"}


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
    from bench.api import train

    if args.list:
        _print_defenses()
        return 0
    if not args.defense:
        raise BenchError("bench train needs --defense NAME (or --list)")
    recipe = {name: getattr(args, name) for name in (flag.replace("-", "_") for flag, _ in RECIPE_FLAGS)}
    trained = train(args.defense, dataset=args.dataset, out=args.out, budget=args.budget,
                    params=_parse_params(args.param), data_dir=args.data_dir, device=args.device, resume=args.resume,
                    overwrite=args.overwrite, max_train_points=args.max_train_points, quiet=args.quiet, **recipe)
    if trained is not None:  # None: a torchrun rank other than 0; rank 0 wrote and reports
        print(trained)
    return 0
