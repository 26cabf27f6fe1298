"""Does one random start decide what APGD-CE breaks, and does the first start's margin say where
another start would pay? (issue 30: afd test point #209)

A standard APGD-CE from a library nobody here wrote (torchattacks, 100 steps, seed 0, the point at
batch position 209) breaks afd #209, which aa and aa-fast leave robust. Run from 40 different starts
our APGD-CE breaks it 18 times: the success hangs on the start, not on the budget. This study
measures how common that is and whether a rule can find those points cheaply. For each checkpoint
named it runs aa-fast's APGD-CE (our APGD, per-example starts, 100 steps) with seed 0 on the
clean-correct points among the first `--n`, keeps the margin (true logit minus the largest other)
at each survivor's best point, relative to its clean margin, then runs `--starts` further seeds on
the survivors and counts, per bucket of that relative margin, the points another start breaks and
the starts it took. Results and what they mean: docs/performance.md.

Usage: python benchmarks/restart_study.py --defense afd --defense pgd-at [--n 1000] [--starts 8]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import perf  # noqa: E402  (benchmarks/perf.py: the same model loading)

from bench import data  # noqa: E402
from bench.attacks.apgd import APGD, APGDConfig  # noqa: E402
from bench.loading.model import ModelUnderTest  # noqa: E402
from bench.threat import Norm, ThreatModel  # noqa: E402

LINF = ThreatModel(Norm.LINF, 0.1)
BUCKETS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.01)  # best-point margin / clean margin
BATCH = 500


def margin(model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        logits = model(x)
    true = logits.gather(1, y[:, None]).squeeze(1)
    return true - logits.scatter(1, y[:, None], float("-inf")).amax(1)


def apgd_ce(model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """aa-fast's APGD-CE: (success, x at the first success or the best loss), in batches."""
    attack = APGD("study", 1, APGDConfig(per_example_start=True))
    success, x_adv = [], []
    with model.attack_mode():
        for lo in range(0, x.shape[0], BATCH):
            out = attack.run(model, x[lo:lo + BATCH], y[lo:lo + BATCH], LINF, seed)
            success.append(out.success)
            x_adv.append(out.x_adv)
    return torch.cat(success), torch.cat(x_adv)


def study(defense: str, n: int, starts: int) -> dict[str, object]:
    model = perf.load(defense)
    x, y = data.load(perf.DATASET, data.Split.TEST).batch(slice(0, n))
    index = (model.predict(x) == y).nonzero().squeeze(1)
    x, y = x[index], y[index]
    start = time.time()
    broken, at = apgd_ce(model, x, y, seed=0)
    left = (~broken).nonzero().squeeze(1)
    relative = (margin(model, at[left], y[left]) / margin(model, x[left], y[left])).clamp(min=0.0)
    first_break = torch.full((left.numel(),), -1)
    todo = torch.arange(left.numel())
    for seed in range(1, starts + 1):
        if not todo.numel():
            break
        hit, _ = apgd_ce(model, x[left[todo]], y[left[todo]], seed)
        first_break[todo[hit]] = seed
        todo = todo[~hit]
    rows = []
    for lo, hi in zip(BUCKETS, BUCKETS[1:], strict=False):
        inside = (relative >= lo) & (relative < hi)
        found = inside & (first_break > 0)
        rows.append([f"[{lo:.2f}, {hi:.2f})", int(inside.sum()), int(found.sum()),
                     ", ".join(str(int(s)) for s in first_break[found].tolist()) or "–"])
    found_at = [int(index[left][i]) for i in (first_break > 0).nonzero().squeeze(1).tolist()]
    print(f"\n{defense}: test points another start breaks: {found_at}")
    print(f"{defense}: {x.shape[0]} clean-correct of the first {n}; seed 0 breaks {int(broken.sum())}; "
          f"{left.numel()} survive; {time.time() - start:.0f} s")
    print(tabulate(rows, headers=["best margin / clean margin", "survivors", f"broken by seeds 1-{starts}",
                                  "first seed that broke each"], tablefmt="github"))
    return {"defense": defense, "n": n, "clean_correct": x.shape[0], "broken_seed0": int(broken.sum()),
            "survivors": left.numel(), "starts": starts, "relative_margin": relative.tolist(),
            "first_break": first_break.tolist(), "test_index": index[left].tolist()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--defense", action="append", required=True)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--starts", type=int, default=8)
    parser.add_argument("--out", type=Path, help="write the per-point results as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = [study(d, args.n, args.starts) for d in args.defense]
    if args.out:
        args.out.write_text(json.dumps({"machine": perf.machine(), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
