"""Evaluate every finished full-budget checkpoint as a published defense is evaluated, resumably.

Issue 30's evidence: each checkpoint in checkpoints/fashion-mnist-full/ gets, in this order,
1. `board`: FGSM, PGD, C&W, aa-fast and `adaptive` (the defense's own adaptive attacks, a transfer
   attack and the 10 000-query Square, each in a run of its own) on the first 1000 test points — the
   leaderboard's row;
2. `official`: the official AutoAttack (`aa`) on the first 200;
3. `curves`: the worst-case ε-curve, FGSM, PGD, aa-fast and the defense's own adaptive attacks at
   ε ∈ {0.05, 0.1, 0.15, 0.2} on the first 500;
4. `audit`: `bench audit` (200 points; it reuses 1 and 2, and runs the binarization test).
Steps 1–3 are `bench.sweep` calls, so whatever the records already hold is skipped and a run that
was stopped continues from the progress saved after its last batch; an audit is skipped when one
exists for the checkpoint's sha256. Run it again after any stop. Gated checkpoints come first, then
the order they finish training in. One thread (two torch processes at most on the 2-core machine),
IEEE fp32: bf16 attacks were measured to miss points fp32 breaks (benchmarks/bf16_check.py).

`--budget recipe` does the same for the committed recipe checkpoints (checkpoints/fashion-mnist/):
their records exist, so only what a newer protocol or a new step asks for runs (aa-fast v6, the
ε-curves with adaptive attacks).

Usage: python benchmarks/evaluate_full.py [--budget full|recipe] [--only pgd-at,ancra]
                                          [--steps board,official,curves,audit]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import bench  # noqa: E402
from bench.attacks.base import adaptive_attacks_for  # noqa: E402
from bench.auditing.report import load_audits  # noqa: E402
from bench.evaluation.committed import attack_context  # noqa: E402
from bench.files import sha256_file  # noqa: E402
from defenses.training import checkpoints  # noqa: E402
from defenses.training.registry import DEFENSES  # noqa: E402

DATASET = "fashion-mnist"
RESULTS = REPO / "results" / "runs"
AUDITS = REPO / "results" / "audits"
ORDER = ("pgd-at", "trades", "ancra", "standard", "afd", "ancra-pgd", "ascl", "mart", "ancra-mart", "spat", "claf")
CURVE_EPS = (0.05, 0.1, 0.15, 0.2)
STANDARD = "fgsm,pgd,cw,aa-fast"


def checkpoint(defense: str, budget: str) -> Path:
    return checkpoints.default_path(DATASET, defense, DEFENSES.get(defense).recipes[DATASET].arch, budget)


def own_adaptive(defense: str) -> tuple[str, ...]:
    """The attacks the defense's structure calls for (none for most: then the curve is FGSM, PGD, aa-fast)."""
    return DEFENSES.get(defense).adaptive_attacks


def board_runs(defense: str) -> list[str]:
    """The board's attacks as runs: the standard four in one, then each of what `adaptive` means for
    the defense in a run of its own. A record lands only when its run ends, and the progress saved
    between batches (results/runs/.state) is not committed, so a stop loses at most one attack."""
    return [STANDARD, *(str(spec) for spec in adaptive_attacks_for(attack_context(DATASET, defense)))]


def audited(path: Path) -> bool:
    digest = sha256_file(path)
    return any(a.sha256 == digest for a in load_audits(AUDITS))


def steps(defense: str, path: Path, budget: str) -> dict[str, Callable[[], object]]:
    model: str | Path = defense if budget == "recipe" else path  # `--defense NAME` is the committed recipe one
    sweep = dict(dataset=DATASET, results_dir=RESULTS, quiet=True)
    return {
        "board": lambda: [bench.sweep([model], attacks=attacks, n=1000, **sweep) for attacks in board_runs(defense)],
        "official": lambda: bench.sweep([model], attacks="aa", n=200, **sweep),
        "curves": lambda: bench.sweep([model], attacks=",".join(("fgsm", "pgd", "aa-fast", *own_adaptive(defense))),
                                      eps_sweep=CURVE_EPS, n=500, **sweep),
        "audit": lambda: None if audited(path) else bench.audit(model, dataset=DATASET, results_dir=RESULTS),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated defenses (default: every finished one)")
    parser.add_argument("--steps", default="board,official,curves,audit")
    parser.add_argument("--budget", default="full", choices=("full", "recipe"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    wanted = args.only.split(",") if args.only else list(ORDER)
    chosen = args.steps.split(",")
    for defense in wanted:
        path = checkpoint(defense, args.budget)
        if not path.is_file():
            print(f"{defense}: not trained yet ({path})", flush=True)
            continue
        todo = steps(defense, path, args.budget)
        for step in chosen:
            start = time.time()
            todo[step]()
            print(f"{defense}: {step} done ({time.time() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
