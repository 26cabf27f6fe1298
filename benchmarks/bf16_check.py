"""Is bf16 as strong as fp32 on this CPU? The precondition for running issue 30's attacks in bf16.

bf16 autocast makes the attacks' forward and backward passes cheaper on a CPU with AVX512-BF16 or
AMX, but it perturbs every gradient and every margin: an attack could miss points the fp32 attack
breaks. Successes are always verified in IEEE fp32, so bf16 cannot make a number too low; it can
make it too high. This script measures that per point, on committed checkpoints whose fp32 board
records exist in results/runs:
1. `agreement`: the board's attacks (FGSM, PGD, C&W, aa-fast and the adaptive set) in bf16 on the
   first 1000 test points, recorded in results/bf16-check/runs/ (resumable: `bench sweep`); per
   attack, every point the fp32 record of the same protocol broke that bf16 left robust is listed
   (an exception), and the reverse counted. The rule (issue 30): at most 1 exception in 1000.
2. `speed`: aa-fast and Square (1000 queries) on the first 100 points, fp32 then bf16 in this
   process on one thread, so the ratio is this machine's.

Usage: python benchmarks/bf16_check.py [--checks afd,trades] [--budget recipe] [--parts agreement,speed]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import bench  # noqa: E402
from bench.records.run_record import RunRecord, load_run_records  # noqa: E402
from bench.records.schema import RunPurpose  # noqa: E402
from defenses.training import checkpoints  # noqa: E402
from defenses.training.registry import DEFENSES  # noqa: E402

DATASET = "fashion-mnist"
BOARD = "fgsm,pgd,cw,aa-fast,adaptive"
N = 1000
FP32_RUNS = REPO / "results" / "runs"
BF16_RUNS = REPO / "results" / "bf16-check" / "runs"
SPEED_ATTACKS = ("aa-fast", "square-long:queries=1000")


def model_of(defense: str, budget: str) -> str | Path:
    """`--defense NAME` for a committed recipe checkpoint, the file for a full-budget one."""
    if budget == "recipe":
        return defense
    return checkpoints.default_path(DATASET, defense, DEFENSES.get(defense).recipes[DATASET].arch, budget)


def board_records(runs: Path, sha: str) -> list[RunRecord]:
    """The checkpoint's records at the board's ε on the first points, newest last."""
    chosen = [r for r in load_run_records(runs) if r.model.sha256 == sha and r.threat.eps == 0.1
              and r.purpose == RunPurpose.EVALUATION and r.selection == "first-n"]
    return sorted(chosen, key=lambda r: r.provenance.date)


def flags(records: list[RunRecord], label: str, protocol: str) -> dict[int, bool]:
    """Per test index: robust under `label` at `protocol`, from the newest record that has it."""
    out: dict[int, bool] = {}
    for r in records:
        if label in r.attacks and r.attacks[label].protocol == protocol and r.has_per_attack_flags:
            out = {**out, **r.flags_by_index(label)}
    return out


def agreement(defense: str, budget: str) -> int:
    """Run the board in bf16 (what is recorded is skipped) and compare per point; the exceptions' count."""
    model = model_of(defense, budget)
    bench.sweep([model], dataset=DATASET, attacks=BOARD, n=N, precision="bf16", results_dir=BF16_RUNS, quiet=True)
    sha = bench.load(model, dataset=DATASET).sha256
    bf16 = board_records(BF16_RUNS, sha)
    fp32 = [r for r in board_records(FP32_RUNS, sha) if r.provenance.precision == "fp32"]
    exceptions = 0
    worst_low: dict[int, bool] = {}
    worst_high: dict[int, bool] = {}
    print(f"\n{defense} ({budget}, sha256 {sha[:12]}), first {N} points, ε = 0.1")
    print(f"{'attack':<18} {'protocol':<18} {'points':>6} {'fp32 broke':>10} {'bf16 broke':>10} "
          f"{'fp32 only':>9} {'bf16 only':>9} {'bf16 s':>8}  exceptions (fp32 broke, bf16 did not)")
    for label, result in sorted({lab: res for r in bf16 for lab, res in r.attacks.items()}.items()):
        low = flags(bf16, label, result.protocol)
        high = flags(fp32, label, result.protocol)
        shared = sorted(low.keys() & high.keys())
        if not shared:
            print(f"{label:<18} {result.protocol:<18} no fp32 record of this protocol: not compared")
            continue
        clean = next(r for r in bf16 if label in r.attacks).clean_indices()
        only_fp32 = [i for i in shared if i in clean and not high[i] and low[i]]
        only_bf16 = [i for i in shared if i in clean and high[i] and not low[i]]
        exceptions += len(only_fp32)
        worst_low = {i: worst_low.get(i, True) and low[i] for i in shared}
        worst_high = {i: worst_high.get(i, True) and high[i] for i in shared}
        print(f"{label:<18} {result.protocol:<18} {len(shared):>6} {sum(i in clean and not high[i] for i in shared):>10} "
              f"{sum(i in clean and not low[i] for i in shared):>10} {len(only_fp32):>9} {len(only_bf16):>9} "
              f"{result.seconds:>8.0f}  {', '.join(f'#{i}' for i in only_fp32) or '-'}")
    missed = sorted(i for i in worst_high if not worst_high[i] and worst_low[i])
    print(f"worst case over these: fp32 {sum(worst_high.values())} robust, bf16 {sum(worst_low.values())}; "
          f"broken only in fp32: {', '.join(f'#{i}' for i in missed) or '-'}")
    return exceptions


def speed(defense: str, budget: str) -> None:
    model = model_of(defense, budget)
    print(f"\nspeed, {defense} ({budget}), first 100 points, 1 thread, {platform.processor() or platform.machine()}")
    for attack in SPEED_ATTACKS:
        seconds = {}
        for precision in ("fp32", "bf16"):
            start = time.perf_counter()
            bench.evaluate(model, dataset=DATASET, attacks=attack, n=100, precision=precision)
            seconds[precision] = time.perf_counter() - start
        print(f"{attack:<26} fp32 {seconds['fp32']:7.1f} s   bf16 {seconds['bf16']:7.1f} s   "
              f"fp32/bf16 {seconds['fp32'] / seconds['bf16']:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", default="afd,trades", help="comma-separated defenses (default: afd,trades)")
    parser.add_argument("--budget", default="recipe", choices=("recipe", "full"))
    parser.add_argument("--parts", default="agreement,speed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    parts = args.parts.split(",")
    with open("/proc/cpuinfo") as info:
        text = info.read()
    print(f"CPU: {'AMX' if 'amx_bf16' in text else 'no AMX'}, "
          f"{'AVX512-BF16' if 'avx512_bf16' in text else 'no AVX512-BF16'}")
    exceptions = 0
    for defense in args.checks.split(","):
        if "speed" in parts:
            speed(defense, args.budget)
        if "agreement" in parts:
            exceptions += agreement(defense, args.budget)
    if "agreement" in parts:
        print(f"\nexceptions in all: {exceptions}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
