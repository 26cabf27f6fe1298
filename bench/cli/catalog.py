"""`bench ls` and `bench data`: what is registered, and fetching datasets."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_ls(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ls", help="list attacks, defenses or datasets")
    p.add_argument("what", choices=["attacks", "defenses", "datasets"])
    p.set_defaults(func=_cmd_ls)


def _cmd_ls(args: argparse.Namespace) -> int:
    if args.what == "attacks":
        from bench.attacks import ATTACKS

        for name, entry in ATTACKS.items():
            print(f"{name:12s} {entry.summary}")
        print(f"{'adaptive':12s} the defense's own adaptive attacks (`bench ls defenses`), a transfer attack "
              "from pgd-at's checkpoint and square-long")
    elif args.what == "defenses":
        from defenses import DEFENSES

        for name, defense in DEFENSES.items():
            adaptive = f"; adaptive: {', '.join(defense.adaptive_attacks)}" if defense.adaptive_attacks else ""
            print(f"{name:10s} {defense.summary} (datasets: {', '.join(defense.recipes)}{adaptive})")
    else:
        from bench.data import DATASETS

        for name, spec in DATASETS.items():
            threats = "; ".join(t.label for t in spec.threat_models)
            print(f"{name:14s} {spec.num_classes} classes, {spec.shape}, default threat: {threats}")
    return 0

def add_data(sub: argparse._SubParsersAction) -> None:
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
