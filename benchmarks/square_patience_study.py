"""Could aa-fast's Square stage give up early on a point? Per-example patience rules, measured.

For each checkpoint named, it takes the newest committed aa-fast v5 record on ≥ 1000 points (seed
0, L∞ ε = 0.1) and the points that reached its Square stage (clean-correct, left robust by the
gradient stages: those Square broke and those still robust at the end).
It replays the Square stage exactly (official code, per-example stripes, seed 0; the replay must
break what the record says Square broke), keeping each point's lowest margin after every query,
and judges rules "at query Q, give up on a point whose margin fell but is still above r × its
margin at the start" (a margin that never moved says nothing: a flat, hard-argmax output) by the
queries they save and the successes they lose. Trajectories are cached per checkpoint (`--cache`).
Results and what they mean: docs/performance.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import perf  # noqa: E402  (benchmarks/perf.py: the same model loading)

from bench import data  # noqa: E402
from bench.attacks.aa_fast import SQUARE_QUERIES, PerExampleStartSquare  # noqa: E402
from bench.evaluation.committed import committed_checkpoint  # noqa: E402
from bench.records.run_record import RunRecord, load_run_records  # noqa: E402
from bench.threat import Norm, ThreatModel  # noqa: E402
from defenses.training import checkpoints  # noqa: E402

DATASET, SEED, PROTOCOL = "fashion-mnist", 0, "aa-fast/v5"
LINF = ThreatModel(Norm.LINF, 0.1)
RULES = [(q, r) for q in (100, 300, 500) for r in (0.5, 0.8, 0.9, 0.95, 0.98)]
REPO = Path(__file__).resolve().parents[1]


class TracedSquare(PerExampleStartSquare):
    """aa-fast's Square, keeping every example's lowest margin after each query. The official loop
    queries the examples whose lowest margin is still positive, in batch order; with the margin
    loss it keeps the lower of the old and new margin, so the same bookkeeping here follows it."""

    lowest: torch.Tensor | None = None
    trace: list[np.ndarray]

    def margin_and_loss(self, x: torch.Tensor, y: torch.Tensor) -> Any:
        margin, loss = super().margin_and_loss(x, y)
        if self.lowest is None:  # the start: every example
            self.lowest, self.trace = margin.clone(), []
        else:
            queried = (self.lowest > 0).nonzero().squeeze(1)
            self.lowest[queried] = torch.minimum(self.lowest[queried], margin)
        self.trace.append(self.lowest.numpy().copy())
        return margin, loss


def v5_record(defense: str) -> RunRecord:
    path = committed_checkpoint(DATASET, defense)
    assert path is not None
    sha = checkpoints.read_sidecar(path)["sha256"]
    found = [r for r in load_run_records(REPO / "results" / "runs")
             if r.model.sha256 == sha and r.n >= 1000 and r.seed == SEED and r.threat == LINF
             and any(a.protocol == PROTOCOL for a in r.attacks.values())]
    assert found, f"no {PROTOCOL} record on 1000 points for {defense}"
    return max(found, key=lambda r: r.order)


def reached_square(record: RunRecord) -> tuple[np.ndarray, np.ndarray]:
    """Test indices of the points Square attacked, and whether it broke each."""
    by = record.broken_first_by
    assert by is not None
    rows = [i for i, name in enumerate(by) if record.clean_correct[i] and (name is None or "square" in name)]
    return record.index[rows], np.array([by[i] is not None for i in rows])


def points(index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = data.load(DATASET, data.Split.TEST).batch(slice(0, int(index.max()) + 1))
    return x[index], y[index]


def trajectories(defense: str, cache: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(test indices, broken by Square, lowest margin [queries + 1, n]) — replayed or cached."""
    file = cache / f"{defense}.npz"
    if file.exists():
        z = np.load(file)
        return z["index"], z["broken"], z["lowest"]
    index, broken = reached_square(v5_record(defense))
    x, y = points(index)
    square = TracedSquare(perf.load(defense), norm="Linf", n_queries=SQUARE_QUERIES, eps=LINF.eps, p_init=0.8,
                          n_restarts=1, seed=SEED, resc_schedule=False, device=x.device)
    start = time.perf_counter()
    with torch.inference_mode():
        square.init_hyperparam(x)
        torch.random.manual_seed(SEED)
        square.attack_single_run(x, y)
    trace = square.trace + [square.trace[-1]] * (SQUARE_QUERIES + 1 - len(square.trace))  # stopped early
    lowest = np.stack(trace)
    assert ((lowest[-1] <= 0) == broken).all(), f"{defense}: the replay does not break what the record says"
    print(f"{defense}: {len(index)} points reached Square, it broke {int(broken.sum())} (the replay agrees); "
          f"replay {time.perf_counter() - start:.0f} s", flush=True)
    np.savez_compressed(file, index=index, broken=broken, lowest=lowest)
    return index, broken, lowest


def patience(lowest: np.ndarray, broken: np.ndarray, at: int, keep_below: float) -> tuple[float, int]:
    """(share of queries saved, Square successes lost) under one rule."""
    spent = 1 + (lowest[:-1] > 0).sum(0)  # the start, then one query per step while unbroken
    now, start = lowest[at], lowest[0]
    give_up = (now > 0) & (now < start) & (now > keep_below * start)
    return 1 - np.where(give_up, 1 + at, spent).sum() / spent.sum(), int((give_up & broken).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--defenses", default="ancra,pgd-at")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "bench-square-trajectories",
                        help="where the replayed trajectories are kept (about 150 kB per checkpoint)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.cache.mkdir(parents=True, exist_ok=True)
    defenses = args.defenses.split(",")
    traced = {d: trajectories(d, args.cache) for d in defenses}
    rows = []
    for at, r in RULES:
        judged = [patience(lowest, broken, at, r) for _, broken, lowest in traced.values()]
        rows.append([f"Q = {at}, r = {r}", *(f"{100 * saved:.0f}% saved, {lost} lost" for saved, lost in judged)])
    print("\nPatience rules:\n")
    print(tabulate(rows, ["rule", *defenses], tablefmt="github"))
    for d, (index, broken, lowest) in traced.items():
        late = [(int(index[j]), int(np.argmax(lowest[:, j] <= 0)), lowest[300, j] / lowest[0, j], lowest[500, j] / lowest[0, j])
                for j in np.flatnonzero(broken)]
        kept = lowest[300, ~broken] / lowest[0, ~broken]
        print(f"\n{d}: Square's successes (test index, query, margin/start at 300 and 500): "
              + ", ".join(f"#{i} q{q} {a:.2f}/{b:.2f}" for i, q, a, b in sorted(late, key=lambda t: t[1])))
        print(f"{d}: points it did not break, margin/start at 300: quartiles "
              + " / ".join(f"{v:.2f}" for v in np.quantile(kept, [0.25, 0.5, 0.75])))

if __name__ == "__main__":
    main()
