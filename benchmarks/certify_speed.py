"""Certification speed on this machine, beside the attacks' cost on the same points in the same run.

On the first --n test points of a committed SmallCNN (default pgd-at) at ε = --eps: `ibp` and
`crown` (seconds per point, certified count) against one fp32 forward pass and PGD-10 on the same
points, so the figures read as ratios to peers measured together. With --milp-checkpoint (a network
`milp` accepts, e.g. an MLP) it also times `milp` per point on its first --milp-n points: median,
90th percentile and the undecided count at --time-limit.

Usage: OMP_NUM_THREADS=1 python benchmarks/certify_speed.py [--n 1000] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
from tabulate import tabulate

import bench
from bench import data
from bench.evaluation.resolve import resolve
from bench.verifier.runner import Method, certify_points
from defenses.training import checkpoints


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--defense", default="pgd-at")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--milp-checkpoint", type=Path)
    parser.add_argument("--milp-n", type=int, default=200)
    parser.add_argument("--time-limit", type=float, default=60.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{platform.processor() or platform.machine()}, {args.threads} thread(s), torch {torch.__version__}")
    test = data.load("fashion-mnist", data.Split.TEST)
    x, y = test.batch(slice(0, args.n))
    model = resolve("fashion-mnist", "linf", defense=args.defense).module.eval()
    rows = []
    start = time.perf_counter()
    with torch.no_grad():
        model(x)
    rows.append(["forward (fp32)", time.perf_counter() - start, ""])
    start = time.perf_counter()
    found = bench.attack(model, x, y, "pgd:steps=10", eps=args.eps)
    rows.append(["pgd:steps=10", time.perf_counter() - start, f"robust {int((~found.success & found.clean_correct).sum())}"])
    for method in (Method.IBP, Method.CROWN):
        cert = certify_points(model, x, y, args.eps, method)
        rows.append([method.value, cert.seconds, f"certified {int(cert.certified.sum())}"])
    base = rows[0][1]
    print(tabulate([[name, f"{s:.2f}", f"{s / args.n * 1e3:.2f}", f"{s / base:.0f}×", what]
                    for name, s, what in rows],
                   headers=[f"{args.defense}, {args.n} points, ε={args.eps}", "s", "ms/point", "vs forward", ""]))
    if args.milp_checkpoint:
        mlp, _ = checkpoints.load(args.milp_checkpoint)
        xs, ys = x[:args.milp_n], y[:args.milp_n]
        cert = certify_points(mlp, xs, ys, args.eps, Method.MILP, batch_size=1, time_limit=args.time_limit)
        per_point = cert.seconds / len(xs)
        print(f"milp on {args.milp_checkpoint.name}: {len(xs)} points in {cert.seconds:.1f} s ({per_point:.2f} s/point "
              f"mean); certified {int(cert.certified.sum())}, refuted {int(cert.refuted.sum())}, "
              f"undecided {int(cert.undecided.sum())} at {args.time_limit:.0f} s; margins median "
              f"{np.median(cert.margins):.3f}")


if __name__ == "__main__":
    main()
