"""Harness overhead against the hardware limit and against a direct pyautoattack call.

1. PGD-k through `bench run` (attack + verification + bookkeeping + resume state) divided by
   k forward+backward passes of the bare model on the same batch (eval mode, input gradients).
2. `aa` through `bench run` divided by pyautoattack's run_standard_evaluation on the same points,
   batch size and seed. Both must give the same robust accuracy.

Target: both ratios ≤ 1.10. Usage: python benchmarks/harness_overhead.py [--defense pgd-at] [--n-aa 100]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from bench import data
from bench.attacks import parse_attacks
from bench.evaluation.config import RunConfig
from bench.evaluation.harness import evaluate
from bench.loading.model import ModelUnderTest
from bench.threat import Norm, ThreatModel
from defenses import DEFENSES
from defenses.training import checkpoints


def bare_pgd_cost(module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, k: int, repeats: int) -> float:
    """Seconds for k forward+backward passes (input gradient only), best of `repeats`."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(k):
            xi = x.clone().requires_grad_(True)
            torch.autograd.grad(F.cross_entropy(module(xi), y, reduction="sum"), xi)
        best = min(best, time.perf_counter() - start)
    return best


def harness_seconds(cfg: RunConfig, label: str) -> tuple[float, float]:
    attack = evaluate(cfg).record.attacks[label]
    return attack.seconds, attack.robust.value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--defense", default="pgd-at")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--n-aa", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    dataset = "fashion-mnist"
    threat = ThreatModel(Norm.LINF, 0.1)
    path = checkpoints.default_path(dataset, args.defense, DEFENSES.get(args.defense).recipes[dataset].arch)
    module, _ = checkpoints.load(path)
    x, y = data.load(dataset, data.Split.TEST).batch(slice(0, args.batch))
    print(f"machine: {torch.get_num_threads()} CPU threads, torch {torch.__version__}; model {path.name}")

    with tempfile.TemporaryDirectory() as tmp:
        common = dict(dataset=dataset, threat=threat, defense=args.defense, results_dir=Path(tmp), quiet=True,
                      batch_size=args.batch)
        # PGD-k: the harness attacks the clean-correct points, so time the bare passes on those
        clean_correct = ModelUnderTest(module, 10).predict(x) == y
        bare = bare_pgd_cost(module, x[clean_correct], y[clean_correct], args.steps, args.repeats)
        runs = [harness_seconds(RunConfig(attack_specs=parse_attacks(f"pgd:steps={args.steps}"), n=args.batch, **common),
                                f"pgd:steps={args.steps}")[0] for _ in range(args.repeats)]
        ours = min(runs)
        print(f"PGD-{args.steps} on {int(clean_correct.sum())} points: harness {ours:.3f} s, "
              f"{args.steps} bare fwd+bwd {bare:.3f} s -> ratio {ours / bare:.3f} (target <= 1.10)")

        # AutoAttack: harness vs direct call, same points, batch size and seed
        from pyautoattack import AutoAttack

        cfg = RunConfig(attack_specs=parse_attacks("aa"), n=args.n_aa, **{**common, "batch_size": args.n_aa})
        aa_ours, acc_ours = harness_seconds(cfg, "aa")
        xa, ya = x[: args.n_aa], y[: args.n_aa]
        model = ModelUnderTest(module, 10)
        with model.attack_mode():
            attack = AutoAttack(model, device="cpu", eps=threat.eps, norm="Linf", seed=0, version="standard")
            start = time.perf_counter()
            _, y_adv = attack.run_standard_evaluation(xa, ya, batch_size=args.n_aa)
            aa_direct = time.perf_counter() - start
        acc_direct = float((y_adv == ya).float().mean())
        print(f"AutoAttack standard on {args.n_aa} points: harness {aa_ours:.1f} s (robust {acc_ours:.3f}), "
              f"direct pyautoattack {aa_direct:.1f} s (robust {acc_direct:.3f}) -> ratio "
              f"{aa_ours / aa_direct:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
