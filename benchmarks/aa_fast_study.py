"""What each cut of aa-fast buys, measured per example on the committed checkpoints.

For the first N test points of each checkpoint (seed 0, L∞ ε = 0.1) it runs, as aa-fast would
but without stopping early between stages:
1. our APGD-CE (per-example starts);
2. on what survives, targeted APGD-DLR against all 9 other classes in the MALT order (linearised
   boundary distance at APGD-CE's best point), recording the rank at which each point broke, and
   that target's rank in the logit order (aa-fast/v1) and in the MALT order taken at the clean point;
3. on what survives, Square (official code, per-example initial stripes) with QUERIES queries,
   recording the query at which each point broke and its true-class margin before Square
   (`--square-schedule`: AutoAttack's fixed p-schedule, or pyautoattack's default that compresses
   it to the run's length).
Each point is then compared with the committed official `aa` record on the same points.
Writes JSON lines (one per checkpoint) that `--summary` turns into the tables in docs/README.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import perf  # noqa: E402  (benchmarks/perf.py: the same model loading)

from bench import data  # noqa: E402
from bench.attacks.aa_fast import PerExampleStartSquare  # noqa: E402
from bench.attacks.apgd import LossOf, StartNoise, apgd_single_run  # noqa: E402
from bench.attacks.malt import ranked_targets  # noqa: E402
from bench.evaluation.committed import committed_checkpoint, committed_defenses  # noqa: E402
from bench.loading.model import ModelUnderTest  # noqa: E402
from bench.records.run_record import load_run_records  # noqa: E402
from bench.threat import Norm  # noqa: E402
from defenses.training import checkpoints  # noqa: E402

DATASET, EPS, SEED = "fashion-mnist", 0.1, 0


def load(defense: str) -> tuple[ModelUnderTest, str]:
    """The committed checkpoint under test (as perf.py loads it) and its sha256."""
    path = committed_checkpoint(DATASET, defense)
    assert path is not None
    return perf.load(defense), checkpoints.read_sidecar(path)["sha256"]


def official_aa(sha: str, n: int) -> dict[int, bool] | None:
    best = None
    for r in load_run_records(Path("results/runs")):
        if r.model.sha256 == sha and "aa" in r.attacks and r.threat.eps == EPS and (best is None or r.n > best.n):
            best = r
    if best is None:
        return None
    return {i: f for i, f in best.flags_by_index("aa").items() if i < n}


def margin(model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        z = model(x)
    true = z.gather(1, y[:, None]).squeeze(1)
    return true - z.scatter(1, y[:, None], float("-inf")).amax(1)


def study(defense: str, n: int, queries: int, rescaled: bool) -> dict[str, Any]:
    model, sha = load(defense)
    x, y = data.load(DATASET, data.Split.TEST).batch(slice(0, n))
    idx = torch.arange(n)
    keep = model.predict(x) == y
    x, y, idx = x[keep], y[keep], idx[keep]
    t0 = time.time()
    noise = StartNoise(x, y, SEED, per_example=True)
    rows = torch.arange(len(y))
    ce = apgd_single_run(model, x, y, norm=Norm.LINF, eps=EPS, steps=100, rho=0.75,
                         noise=noise.draw(Norm.LINF, x.shape, rows, x.device), loss_of=LossOf("ce", y))
    t_ce = time.time() - t0
    left = (~ce.fooled).nonzero().squeeze(1)
    xs, ys, x_from = x[left], y[left], ce.x_best[left]
    malt = ranked_targets(model, x_from, ys, Norm.LINF)
    malt_clean = ranked_targets(model, xs, ys, Norm.LINF)
    with torch.no_grad():
        logit_order = model(x_from).sort(dim=1).indices.flip(1)[:, 1:]
    broke_rank = torch.full((len(left),), -1)
    x_best = x_from.clone()
    t1 = time.time()
    for rank in range(9):
        todo = (broke_rank < 0).nonzero().squeeze(1)
        if not todo.numel():
            break
        starts = StartNoise(xs, ys, SEED, per_example=True)
        run = apgd_single_run(model, xs[todo], ys[todo], norm=Norm.LINF, eps=EPS, steps=100, rho=0.75,
                              noise=starts.draw(Norm.LINF, xs[todo].shape, todo, x.device),
                              loss_of=LossOf("dlr-targeted", ys[todo], malt[todo, rank]))
        broke_rank[todo[run.fooled]] = rank
        still = ~run.fooled
        better = margin(model, run.x_best, ys[todo]) < margin(model, x_best[todo], ys[todo])
        x_best[todo[still & better]] = run.x_best[still & better]
    t_t = time.time() - t1
    target = torch.where(broke_rank >= 0, malt.gather(1, broke_rank.clamp_min(0)[:, None]).squeeze(1), -1)

    def rank_in(order: torch.Tensor) -> list[int]:
        return [int((order[i] == target[i]).nonzero()[0]) if target[i] >= 0 else -1 for i in range(len(target))]

    survivors = (broke_rank < 0).nonzero().squeeze(1)
    before_square = margin(model, x_best[survivors], ys[survivors])
    square = PerExampleStartSquare(model, norm="Linf", n_queries=queries, eps=EPS, p_init=0.8, n_restarts=1,
                                   seed=SEED, resc_schedule=rescaled, device=x.device)
    t2 = time.time()
    with torch.inference_mode():
        square.init_hyperparam(xs[survivors])
        torch.random.manual_seed(SEED)
        q, x_sq = square.attack_single_run(xs[survivors], ys[survivors])
        sq_broke = margin(model, x_sq, ys[survivors]) <= 0
    t_sq = time.time() - t2
    aa = official_aa(sha, n)
    points = []
    li, si = left.tolist(), survivors.tolist()
    for k in range(len(y)):
        point: dict[str, Any] = {"index": int(idx[k]), "apgd_ce": bool(ce.fooled[k])}
        if k in li:
            j = li.index(k)
            point.update(malt_rank=int(broke_rank[j]), logit_rank=rank_in(logit_order)[j] if target[j] >= 0 else -1,
                         malt_clean_rank=rank_in(malt_clean)[j] if target[j] >= 0 else -1)
            if j in si:
                s = si.index(j)
                point.update(margin_before_square=round(float(before_square[s]), 4),
                             square_query=int(q[s]) if bool(sq_broke[s]) else -1)
        if aa is not None:
            point["aa_broke"] = not aa[int(idx[k])]
        points.append(point)
    return {"defense": defense, "n": n, "queries": queries, "rescaled": rescaled, "seconds": {"apgd_ce": t_ce, "apgd_t": t_t, "square": t_sq},
            "clean_correct": len(y), "points": points}


def _ranks(points: list[dict[str, Any]], key: str) -> str:
    ranks = sorted(p[key] + 1 for p in points if p.get("malt_rank", -1) >= 0)
    return " ".join(map(str, ranks)) or "–"


def summary(lines: list[dict[str, Any]]) -> str:
    """A markdown table per checkpoint: where aa's successes come from in each stage of aa-fast."""
    body = []
    for r in lines:
        pts = r["points"]
        targeted = [p for p in pts if p.get("malt_rank", -1) >= 0]
        square = sorted(p["square_query"] for p in pts if p.get("square_query", -1) >= 0)
        missed = [p["index"] for p in pts if p.get("aa_broke") and "margin_before_square" in p
                  and p.get("square_query", -1) < 0]
        extra = [p["index"] for p in pts if not p.get("aa_broke")
                 and (p["apgd_ce"] or p.get("malt_rank", -1) >= 0 or p.get("square_query", -1) >= 0)]
        body.append([r["defense"], r["clean_correct"], sum(bool(p.get("aa_broke")) for p in pts),
                     sum(p["apgd_ce"] for p in pts), len(targeted), _ranks(pts, "logit_rank"), _ranks(pts, "malt_rank"),
                     _ranks(pts, "malt_clean_rank"), " ".join(map(str, square)) or "–",
                     ", ".join(map(str, missed)) or "none", len(extra),
                     " / ".join(f"{r['seconds'][k]:.0f}" for k in ("apgd_ce", "apgd_t", "square"))])
    first = lines[0]
    schedule = "compressed to the run's length" if first.get("rescaled", True) else "AutoAttack's fixed one"
    head = (f"First {first['n']} test points, seed 0, L∞ ε = 0.1; Square: {first['queries']} queries, p-schedule "
            f"{schedule}. Target ranks are 1-based: the rank of the class that broke the point in each order "
            "(logit order and MALT order at APGD-CE's best point, MALT order at the clean point); the attack "
            "itself ran in the MALT order at APGD-CE's point, stopping at the first success.\n\n")
    return head + str(tabulate(body, headers=[
        "checkpoint", "clean-correct", "aa broke", "APGD-CE broke", "APGD-T broke", "ranks (logits)", "ranks (MALT)",
        "ranks (MALT, clean)", "Square: query of each success", "aa breaks no stage found", "breaks aa missed",
        "seconds CE / T / Square"], tablefmt="github", disable_numparse=True)) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--defenses", default=",".join(committed_defenses(DATASET)))
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--square-schedule", choices=("fixed", "rescaled"), default="fixed",
                        help="Square's p-schedule: AutoAttack's fixed one, or compressed to --queries "
                             "(pyautoattack's SquareAttack default)")
    parser.add_argument("--out", type=Path, required=True, help="JSON lines, appended to (one line per checkpoint)")
    parser.add_argument("--summary", type=Path, help="write the markdown summary of --out here and measure nothing")
    args = parser.parse_args()
    if args.summary:
        lines = [json.loads(line) for line in args.out.read_text().splitlines() if line.strip()]
        args.summary.write_text(summary(lines))
        return
    for defense in args.defenses.split(","):
        result = study(defense, args.n, args.queries, args.square_schedule == "rescaled")
        with args.out.open("a") as f:
            f.write(json.dumps(result) + "\n")
        print(defense, {k: round(v, 1) for k, v in result["seconds"].items()}, flush=True)


if __name__ == "__main__":
    main()
