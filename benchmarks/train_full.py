"""Train every published defense at the full budget on CPU, resumably, two queues at a time.

The full budget (every training point, 5× the epochs) costs about 18 CPU-hours for the eleven
defenses, far more than one working period, so this is built to be stopped anywhere and run again:
each `bench train --budget full --resume` saves its exact-resume state after every epoch
(`checkpoints/fashion-mnist-full/<name>.train-state.pt`), a finished defense is skipped, and an
interruption loses at most the epoch in progress. Two queues run side by side, one thread each
(two torch processes with two threads each oversubscribe two cores). `standard` comes before
`afd`, which fine-tunes it. Logs go to checkpoints/fashion-mnist-full/logs/ (git-ignored).

Usage: python benchmarks/train_full.py [--queues 2] [--only pgd-at,trades]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATASET = "fashion-mnist"
# Longest-first within each queue's share, the gated ones (pgd-at, trades, ancra) early; the two
# queues' recipe times (2 cores, from the sidecars) are within 10% of each other.
QUEUES = (("standard", "ancra", "afd", "ascl", "mart", "spat"),
          ("pgd-at", "trades", "ancra-pgd", "ancra-mart", "claf"))


def checkpoint(defense: str) -> Path:
    from defenses.training import checkpoints
    from defenses.training.registry import DEFENSES

    arch = DEFENSES.get(defense).recipes[DATASET].arch
    return checkpoints.default_path(DATASET, defense, arch, "full")


def run_queue(defenses: tuple[str, ...], logs: Path) -> list[str]:
    """Train each defense of the queue that has no finished checkpoint; returns the failures."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    failed = []
    for defense in defenses:
        if checkpoint(defense).exists():
            continue
        log = logs / f"{defense}.log"
        start = time.time()
        with log.open("a") as out:
            out.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} start (or resume)\n")
            out.flush()
            code = subprocess.call([sys.executable, "-m", "bench", "train", "--defense", defense, "--dataset",
                                    DATASET, "--budget", "full", "--device", "cpu", "--resume", "--quiet"],
                                   cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
            out.write(f"--- exit {code} after {time.time() - start:.0f} s\n")
        print(f"{defense}: {'done' if code == 0 else f'failed (exit {code}), see {log}'}", flush=True)
        if code != 0:
            failed.append(defense)
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queues", type=int, default=2, choices=(1, 2), help="processes at a time (default 2)")
    parser.add_argument("--only", help="comma-separated defenses (default: all eleven)")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    queues = [tuple(d for d in q if only is None or d in only) for q in QUEUES]
    if args.queues == 1:
        queues = [tuple(d for q in queues for d in q)]
    logs = checkpoint("standard").parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(len(queues)) as pool:
        failed = [d for result in pool.map(lambda q: run_queue(q, logs), queues) for d in result]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
