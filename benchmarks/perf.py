"""Speed against peers and the hardware, measured in one run; writes results/perf.md (+ .json).

Sections (each on the committed Fashion-MNIST checkpoints, the same points for every tool):
1. bare model cost per example (forward; forward+backward with an input gradient);
2. FGSM / PGD / C&W-L2: ours vs torchattacks — time ratio, robust accuracy, passes per example,
   and the hardware-limit figure (passes × bare cost per pass at that batch ÷ wall time);
3. our APGD vs pyautoattack's APGD on every committed checkpoint — time ratio, per-example
   agreement, passes per example;
4. aa-fast vs the official aa on every committed checkpoint, per example (what aa broke that
   aa-fast did not, by test index): both run here back to back for the checkpoints in --aa-fresh
   (the timing rows); for the others the committed records (aa-fast's leaderboard record on 1000
   points, restricted to the first --aa-n); the same from committed records on 1000 points where
   aa ran there too; and both on models built to mask gradients (examples/toy_models.py);
5. `--cascade` vs a plain run, 2 torchrun ranks vs 1, aa's harness overhead, peak RSS of a
   full 10 000-point AA run, and a ResNet-18 on CIFAR-shaped inputs (larger-model picture).

Usage: python benchmarks/perf.py              (all sections, about an hour on 2 cores)
       python benchmarks/perf.py --quick      (small n, a few checkpoints: minutes, for a look)
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tabulate import tabulate

import bench
from bench import data
from bench.attacks import build_attack, parse_attacks
from bench.evaluation.committed import committed_checkpoint, committed_defenses
from bench.evaluation.config import RunConfig
from bench.evaluation.harness import evaluate
from bench.files import atomic_write
from bench.loading.model import ModelUnderTest
from bench.loading.sources import ModelSpec
from bench.records.schema import RunPurpose, load_records
from bench.threat import Norm, ThreatModel
from defenses.training import checkpoints

REPO = Path(__file__).resolve().parent.parent
DATASET = "fashion-mnist"
LINF = ThreatModel(Norm.LINF, 0.1)
L2 = ThreatModel(Norm.L2, 1.5)
SECTIONS = ("single", "apgd", "aa_fast", "aa_fast_large", "masked", "cascade", "shards", "overhead", "rss", "resnet",
            "certify")
MILP_NET = REPO / "checkpoints" / DATASET / "pgd-at-mlp-2x64.pt"  # the exactly decidable network
FAST_PROTOCOL = build_attack("aa-fast").protocol  # the current one: older records are not reused


# ------------------------------------------------------------------ measuring

def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "gpu": gpu, "torch": torch.__version__, "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def load(defense: str) -> ModelUnderTest:
    path = committed_checkpoint(DATASET, defense)
    assert path is not None
    module, _ = checkpoints.load(path)
    model = ModelUnderTest(module, 10)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def clean_correct_points(model: ModelUnderTest, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = data.load(DATASET, data.Split.TEST).batch(slice(0, n))
    keep = model.predict(x) == y
    return x[keep], y[keep]


@dataclass
class BareCost:
    forward: float  # seconds per example
    forward_backward: float


def bare_cost(model: ModelUnderTest, x: torch.Tensor, seconds: float = 2.0) -> BareCost:
    """Seconds per example of the bare module at this batch: forward, and forward+input gradient."""
    module = model.module

    def per_example(step: Callable[[], object]) -> float:
        step()
        start, count = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            step()
            count += 1
        return (time.perf_counter() - start) / (count * x.shape[0])

    def forward() -> object:
        with torch.inference_mode():
            return module(x)

    def forward_backward() -> object:
        z = x.clone().requires_grad_(True)
        return torch.autograd.grad(module(z).sum(), z)

    return BareCost(per_example(forward), per_example(forward_backward))


@dataclass
class Timed:
    seconds: float
    robust: torch.Tensor  # per example
    forward: int
    backward: int

    def hardware_limit(self, cost: BareCost) -> float:
        """Share of the wall time the bare model would need for these passes (1.0 = no overhead)."""
        return (self.backward * cost.forward_backward + (self.forward - self.backward) * cost.forward) / self.seconds


def timed(model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor, run: Callable[[], torch.Tensor],
          threat: ThreatModel) -> Timed:
    """Run an attack returning adversarial inputs; robust = still correct and within ε (decided
    after the clock stops: peers return only inputs, ours also pay for telling success)."""
    before = model.passes.snapshot()
    start = time.perf_counter()
    x_adv = run()
    seconds = time.perf_counter() - start
    spent = model.passes.since(before)
    from bench.norms import distance

    inside = distance(threat.norm, x_adv, x) <= threat.eps + 1e-5
    robust = (model.predict(x_adv) == y) | ~inside
    return Timed(seconds, robust, spent.forward, spent.backward)


def ours(name: str, params: dict[str, str] | None, model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor,
         threat: ThreatModel) -> Callable[[], torch.Tensor]:
    attack = build_attack(name, params)
    return lambda: attack.run(model, x, y, threat, 0).x_adv


# ------------------------------------------------------------------ sections

def section_single_attacks(n: int) -> list[dict[str, Any]]:
    import torchattacks

    model = load("pgd-at")
    x, y = clean_correct_points(model, n)
    cost = bare_cost(model, x)
    eps = LINF.eps
    pairs = [
        ("FGSM", LINF, ours("fgsm", None, model, x, y, LINF), lambda: torchattacks.FGSM(model, eps=eps)(x, y)),
        ("PGD-20, step ε/4", LINF, ours("pgd", None, model, x, y, LINF),
         lambda: torchattacks.PGD(model, eps=eps, alpha=eps / 4, steps=20, random_start=True)(x, y)),
        ("C&W-L2, c=1, 100 Adam steps", L2,
         ours("cw-l2", {"binary_steps": "1", "steps": "100", "initial_const": "1"}, model, x, y, L2),
         lambda: torchattacks.CW(model, c=1, kappa=0, steps=100, lr=0.01)(x, y)),
        ("C&W∞ (margin PGD-30)", LINF, ours("cw", None, model, x, y, LINF), None),
    ]
    rows = []
    for label, threat, mine, theirs in pairs:
        a = timed(model, x, y, mine, threat)
        row = {"attack": label, "points": len(y), "ours_s": a.seconds, "ours_robust": float(a.robust.float().mean()),
               "ours_passes": (a.forward + a.backward) / len(y), "hardware_limit": a.hardware_limit(cost)}
        if theirs is not None:
            b = timed(model, x, y, theirs, threat)
            row.update(torchattacks_s=b.seconds, torchattacks_robust=float(b.robust.float().mean()),
                       torchattacks_passes=(b.forward + b.backward) / len(y), ratio=b.seconds / a.seconds)
        rows.append(row)
        print(f"  {label}: {row}", flush=True)
    return rows


def section_apgd(n: int, defenses: list[str]) -> list[dict[str, Any]]:
    from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted

    rows = []
    jobs: list[tuple[str, str]] = [(d, "apgd-ce") for d in defenses] + [("pgd-at", "apgd-t")]
    for defense, which in jobs:
        model = load(defense)
        x, y = clean_correct_points(model, n)
        cost = bare_cost(model, x)
        if which == "apgd-ce":
            official = APGDAttack(model, n_iter=100, norm="Linf", eps=LINF.eps, seed=0, loss="ce", device="cpu")
            mine = ours("apgd", None, model, x, y, LINF)
        else:
            official = APGDAttack_targeted(model, n_iter=100, norm="Linf", eps=LINF.eps, seed=0, device="cpu",
                                           n_target_classes=9)
            mine = ours("apgd-targeted", None, model, x, y, LINF)
        b = timed(model, x, y, functools.partial(official.perturb, x, y), LINF)
        a = timed(model, x, y, mine, LINF)
        row = {"defense": defense, "attack": which, "points": len(y),
               "ours_s": a.seconds, "pyautoattack_s": b.seconds, "ratio": b.seconds / a.seconds,
               "ours_robust": float(a.robust.float().mean()), "pyautoattack_robust": float(b.robust.float().mean()),
               "agreement": float((a.robust == b.robust).float().mean()),
               "ours_passes": a.backward / len(y), "pyautoattack_passes": b.backward / len(y),
               "ours_hardware_limit": a.hardware_limit(cost), "pyautoattack_hardware_limit": b.hardware_limit(cost)}
        rows.append(row)
        print(f"  {row}", flush=True)
    return rows


def _run(attacks: str, defense: str | None, n: int, results: Path, **extra: Any) -> dict[str, Any]:
    cfg = RunConfig(dataset=DATASET, threat=LINF, attack_specs=parse_attacks(attacks), defense=defense, n=n,
                    results_dir=results, quiet=True, **extra)
    return _written(evaluate(cfg).record_path)


def _written(path: Path | None) -> dict[str, Any]:
    """The record's JSON as written, so that fresh and committed records compare field by field."""
    assert path is not None, "perf runs write their records"
    return json.loads(path.read_text())


def _recorded(attack: str, protocol: str, sha: str | None, n: int) -> dict[str, Any] | None:
    """The newest committed record of this checkpoint that ran `attack` (protocol version
    `protocol`, seed 0, the default L∞ threat) on the first n or more test points."""
    best = None
    for r in load_records(REPO / "results" / "runs"):
        res = r["attacks"].get(attack)
        if (res is None or res["protocol"] != protocol or r["model"]["sha256"] != sha
                or r["threat"] != {"norm": "linf", "eps": LINF.eps} or r["config"].get("seed") != 0
                or r["per_example"]["index"][:n] != list(range(n))):
            continue
        if best is None or (r["data"]["n"], r["provenance"]["date"]) > (best["data"]["n"], best["provenance"]["date"]):
            best = r
    return best


def _first(record: dict[str, Any], attack: str, n: int) -> str:
    return record["per_example"]["robust"][attack][:n]


def _versus_aa(defense: str, fast: dict[str, Any], official: dict[str, Any], n: int) -> dict[str, Any]:
    """Per example on the first n points: what aa broke that aa-fast did not, and the reverse."""
    a, b = _first(fast, "aa-fast", n), _first(official, "aa", n)
    missed = [i for i in range(n) if b[i] == "0" and a[i] == "1" and official["per_example"]["clean_correct"][i] == "1"]
    extra = [i for i in range(n) if a[i] == "0" and b[i] == "1" and fast["per_example"]["clean_correct"][i] == "1"]
    return {"defense": defense, "points": n, "aa_robust": b.count("1") / n, "aa_fast_robust": a.count("1") / n,
            "difference_pts": 100 * (a.count("1") - b.count("1")) / n, "missed": missed, "extra": len(extra),
            "agreement": sum(p == q for p, q in zip(a, b, strict=True)) / n}


def section_aa_fast(n: int, defenses: list[str], fresh: set[str], timed_n: int, tmp: Path) -> list[dict[str, Any]]:
    """aa-fast against aa on the first n points: both run here, back to back, on the first timed_n
    points for the checkpoints in `fresh` (clean timings); for the others the committed records of
    both (aa-fast's from its leaderboard run on more points: batch-independent, so its first n
    points are a run on n)."""
    rows = []
    for defense in defenses:
        path = committed_checkpoint(DATASET, defense)
        sha = checkpoints.read_sidecar(path)["sha256"] if path else None
        timed_here = defense in fresh
        if timed_here:
            m = timed_n
            fast, official = _run("aa-fast", defense, m, tmp / f"fast-{defense}"), _run("aa", defense, m, tmp / f"aa-{defense}")
        else:
            m = n
            fast = _recorded("aa-fast", FAST_PROTOCOL, sha, m) or _run("aa-fast", defense, m, tmp / f"fast-{defense}")
            official = _recorded("aa", "aa/v1", sha, m) or _run("aa", defense, m, tmp / f"aa-{defense}")
        row = _versus_aa(defense, fast, official, m)
        a, b = fast["attacks"]["aa-fast"], official["attacks"]["aa"]
        if timed_here:
            row.update(aa_s=b["seconds"], aa_fast_s=a["seconds"], ratio=b["seconds"] / a["seconds"],
                       aa_fast_stage_cost=a.get("stage_cost"), aa_stage_cost=b.get("stage_cost"))
        row["source"] = "both run here" if timed_here else "committed aa record"
        rows.append(row)
        print(f"  {row}", flush=True)
        recorded = (_recorded("aa-fast", FAST_PROTOCOL, sha, n), _recorded("aa", "aa/v1", sha, n))
        if timed_here and recorded[0] is not None and recorded[1] is not None:  # and on the committed points
            rows.append({**_versus_aa(defense, recorded[0], recorded[1], n), "source": "committed aa record"})
    return rows


def section_aa_fast_large(defenses: list[str], min_n: int = 1000) -> list[dict[str, Any]]:
    """From committed records only: every checkpoint whose aa and aa-fast ran on the same ≥ min_n points."""
    rows = []
    for defense in defenses:
        path = committed_checkpoint(DATASET, defense)
        sha = checkpoints.read_sidecar(path)["sha256"] if path else None
        fast, official = _recorded("aa-fast", FAST_PROTOCOL, sha, min_n), _recorded("aa", "aa/v1", sha, min_n)
        if fast is None or official is None:
            continue
        n = min(fast["data"]["n"], official["data"]["n"])
        rows.append(_versus_aa(defense, fast, official, n))
    return rows


MASKED_TOYS = (("rounded_smallcnn", "inputs rounded to 8 bits"), ("quantized_smallcnn", "inputs quantized to 8 levels"),
               ("hard_argmax_smallcnn", "10·onehot(argmax) output"))


def section_masked(n: int, tmp: Path) -> list[dict[str, Any]]:
    """aa and aa-fast on models built to mask gradients (examples/toy_models.py, the standard
    checkpoint's weights): gradient attacks see nothing, so only black-box search counts."""
    weights = committed_checkpoint(DATASET, "standard")
    rows = []
    for factory, what in MASKED_TOYS:
        spec = ModelSpec(f"examples.toy_models:{factory}", weights=weights)
        fast = _run("aa-fast", None, n, tmp / f"masked-fast-{factory}", model=spec)
        official = _run("aa", None, n, tmp / f"masked-aa-{factory}", model=spec)
        row = _versus_aa(factory, fast, official, n)
        row.update(model=what, clean=fast["clean"]["accuracy"], aa_s=official["attacks"]["aa"]["seconds"],
                   aa_fast_s=fast["attacks"]["aa-fast"]["seconds"])
        row["ratio"] = row["aa_s"] / row["aa_fast_s"]
        rows.append(row)
        print(f"  {row}", flush=True)
    return rows


def section_cascade(n: int, tmp: Path) -> dict[str, Any]:
    attacks = "fgsm,pgd,cw,aa-fast"
    plain = _run(attacks, "pgd-at", n, tmp / "plain")
    cascade = _run(attacks, "pgd-at", n, tmp / "cascade", purpose=RunPurpose.CASCADE)
    seconds = [sum(a["seconds"] for a in r["attacks"].values()) for r in (plain, cascade)]
    row = {"attacks": attacks, "points": n, "plain_s": seconds[0], "cascade_s": seconds[1],
           "ratio": seconds[0] / seconds[1],
           "identical_worst_case": plain["per_example"]["worst_case"] == cascade["per_example"]["worst_case"],
           "worst_case": plain["worst_case"]["robust_accuracy"]}
    print(f"  {row}", flush=True)
    return row


def _bench_cli(args: list[str], nproc: int = 1, env: dict[str, str] | None = None) -> float:
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)] if nproc > 1 else []
    start = time.perf_counter()
    subprocess.run([sys.executable, *launcher, "-m", "bench", "run", *args, "--quiet"], check=True,
                   env={**os.environ, **(env or {})}, capture_output=True)
    return time.perf_counter() - start


def section_shards(n: int, tmp: Path) -> dict[str, Any]:
    common = ["--defense", "pgd-at", "--attack", "fgsm,pgd,apgd-ce", "--points", str(n), "--batch-size", "50"]
    one_s = _bench_cli([*common, "--results-dir", str(tmp / "one")], env={"OMP_NUM_THREADS": "2"})
    two_s = _bench_cli([*common, "--results-dir", str(tmp / "two")], nproc=2, env={"OMP_NUM_THREADS": "1"})
    one, two = (json.loads(next((tmp / d).glob("*.json")).read_text()) for d in ("one", "two"))
    row = {"attacks": "fgsm,pgd,apgd-ce", "points": n, "one_process_s": one_s, "two_ranks_s": two_s,
           "identical_per_example": one["per_example"] == two["per_example"],
           "identical_passes": all(one["attacks"][k]["passes"] == two["attacks"][k]["passes"] for k in one["attacks"])}
    print(f"  {row}", flush=True)
    return row


def section_rss(n: int, tmp: Path) -> dict[str, Any]:
    """Peak RSS of `bench run --attack aa` on n points in a child process (the standard CNN: every
    point is attacked by every APGD-CE iteration, so the batches are full; other stages get nothing)."""
    # a wrapper process whose only child is the run, so no earlier child's peak is counted
    wrapper = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "bench", "run", "--defense", "standard",
                           "--attack", "aa", "--points", str(n), "--results-dir", str(tmp), "--quiet"],
                          check=True, capture_output=True, text=True)
    row = {"attack": "aa", "defense": "standard", "points": n, "batch_size": 500,
           "seconds": time.perf_counter() - start, "peak_rss_mib": int(done.stdout.split()[-1]) / 1024}
    print(f"  {row}", flush=True)
    return row


def section_overhead(n: int, tmp: Path) -> dict[str, Any]:
    from pyautoattack import AutoAttack

    record = _run("aa", "pgd-at", n, tmp / "overhead", batch_size=n)
    model = load("pgd-at")
    x, y = data.load(DATASET, data.Split.TEST).batch(slice(0, n))
    attack = AutoAttack(model, device="cpu", eps=LINF.eps, norm="Linf", seed=0, version="standard")
    start = time.perf_counter()
    _, y_adv = attack.run_standard_evaluation(x, y, batch_size=n)
    direct = time.perf_counter() - start
    ours_s = record["attacks"]["aa"]["seconds"]
    row = {"points": n, "harness_s": ours_s, "direct_s": direct, "ratio": ours_s / direct,
           "harness_robust": record["attacks"]["aa"]["robust_accuracy"], "direct_robust": float((y_adv == y).float().mean())}
    print(f"  {row}", flush=True)
    return row


def section_resnet(n: int) -> dict[str, Any]:
    """ResNet-18 (random weights) on CIFAR-shaped random inputs labelled by its own predictions."""
    import torchattacks
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = ModelUnderTest(resnet18(num_classes=10), 10)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(n, 3, 32, 32)
    y = model.predict(x)
    threat = ThreatModel(Norm.LINF, 8 / 255)
    cost = bare_cost(model, x, seconds=3.0)
    a = timed(model, x, y, ours("pgd", {"steps": "10"}, model, x, y, threat), threat)
    b = timed(model, x, y, lambda: torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=10,
                                                     random_start=True)(x, y), threat)
    row = {"model": "ResNet-18, 3×32×32", "points": n, "attack": "PGD-10", "ours_s": a.seconds,
           "torchattacks_s": b.seconds, "ratio": b.seconds / a.seconds, "ours_hardware_limit": a.hardware_limit(cost),
           "torchattacks_hardware_limit": b.hardware_limit(cost), "fwd_bwd_ms_per_example": 1000 * cost.forward_backward}
    print(f"  {row}", flush=True)
    return row


# ------------------------------------------------------------------ report

def section_certify(n: int, crown_n: int, milp_n: int) -> list[dict[str, Any]]:
    """`ibp` and `crown` beside a forward pass and PGD-10 on the same points: on the certified `ibp`
    network (n points) and the SmallCNN of `pgd-at` (CROWN on crown_n: seconds per point there); `milp` per
    point on the MLP (milp_n points, 60 s limit)."""
    from bench.verifier.runner import Method, certify_points

    test = data.load(DATASET, data.Split.TEST)
    rows = []
    for defense, points in (("ibp", {"ibp": n, "crown": n}), ("pgd-at", {"ibp": n, "crown": crown_n})):
        model, _ = checkpoints.load(committed_checkpoint(DATASET, defense))
        model.eval()
        x, y = test.batch(slice(0, n))
        start = time.perf_counter()
        with torch.no_grad():
            model(x)
        forward = time.perf_counter() - start
        start = time.perf_counter()
        found = bench.attack(model, x, y, "pgd:steps=10", eps=LINF.eps)
        pgd = time.perf_counter() - start
        for method, m in (("ibp", Method.IBP), ("crown", Method.CROWN)):
            k = points[method]
            cert = certify_points(model, x[:k], y[:k], LINF.eps, m)
            rows.append({"model": defense, "method": method, "points": k, "s": cert.seconds,
                         "ms_per_point": 1e3 * cert.seconds / k, "vs_forward": (cert.seconds / k) / (forward / n),
                         "vs_pgd": (cert.seconds / k) / (pgd / n), "certified": int(cert.certified.sum()),
                         "pgd_robust": int((~found.success & found.clean_correct)[:k].sum())})
    model, _ = checkpoints.load(MILP_NET)
    x, y = test.batch(slice(0, milp_n))
    cert = certify_points(model.eval(), x, y, LINF.eps, Method.MILP, batch_size=1)
    rows.append({"model": MILP_NET.stem, "method": "milp", "points": milp_n, "s": cert.seconds,
                 "ms_per_point": 1e3 * cert.seconds / milp_n, "vs_forward": None, "vs_pgd": None,
                 "certified": int(cert.certified.sum()), "pgd_robust": None,
                 "refuted": int(cert.refuted.sum()), "undecided": int(cert.undecided.sum())})
    return rows


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    """columns: (key, header, format)."""
    body = [[("" if r.get(k) is None else format(r[k], f) if f else r[k]) for k, _, f in columns] for r in rows]
    return tabulate(body, headers=[h for _, h, _ in columns], tablefmt="github", disable_numparse=True)


def _missed(row: dict[str, Any]) -> str:
    return ", ".join(map(str, row["missed"])) or "none"


def _aa_fast_summary(rows: list[dict[str, Any]]) -> str:
    """Per example over the committed-record rows (one per checkpoint, where present); timing from
    the back-to-back rows."""
    timed = [r for r in rows if r.get("ratio") is not None]
    compared = [r for r in rows if r.get("ratio") is None] or rows
    missed = [(r["defense"], i) for r in compared for i in r["missed"]]
    lines = [f"Per example on {sum(r['points'] for r in compared)} points of {len(compared)} checkpoints: aa broke "
             f"{len(missed)} point(s) that aa-fast left robust ({', '.join(f'{d} #{i}' for d, i in missed) or 'none'}); "
             f"aa-fast broke {sum(r['extra'] for r in compared)} that aa left robust."]
    if timed:
        ratios = ", ".join(f"{r['defense']} {r['ratio']:.2f}× ({r['points']} points)" for r in timed)
        lines.append(f"Speed-up where both ran here, one after the other on an otherwise idle machine: {ratios}.")
    return " ".join(lines)


AA_FAST_COLUMNS = [("defense", "checkpoint", ""), ("points", "points", ""), ("aa_robust", "aa robust", ".3f"),
                   ("aa_fast_robust", "aa-fast robust", ".3f"), ("difference_pts", "difference (pts)", "+.1f"),
                   ("missed_text", "aa breaks aa-fast missed (test index)", ""), ("extra", "aa-fast breaks aa missed", ""),
                   ("agreement", "per-example agreement", ".3f")]


def _with_missed_text(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "missed_text": _missed(r)} for r in rows]


SECTION_TITLES = {"single": "FGSM, PGD, C&W vs torchattacks", "apgd": "APGD vs pyautoattack",
                  "aa_fast": "aa-fast vs aa", "aa_fast_large": "aa-fast vs aa on 1000 points", "masked": "masked models",
                  "cascade": "cascade", "shards": "shards", "overhead": "harness overhead", "rss": "peak RSS",
                  "resnet": "ResNet"}


def _machine_text(m: dict[str, Any]) -> str:
    return (f"{m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads), {m['memory_gib']} GiB, "
            f"GPU: {m['gpu']}; torch {m['torch']}, Python {m['python']}; measured {m['date']}")


def _elsewhere(results: dict[str, Any]) -> list[str]:
    """A line per earlier machine (or date) whose sections a partial rerun kept: a speed-up is
    comparable only within a section, whose two sides always ran on one machine, back to back."""
    kept: dict[str, list[str]] = {}
    for key, m in results.get("section_machine", {}).items():
        if m != results["machine"] and key in results:
            kept.setdefault(_machine_text(m), []).append(SECTION_TITLES.get(key, key))
    return [f"Kept from an earlier run ({', '.join(titles)}): {text}." for text, titles in kept.items()]


def render(results: dict[str, Any], command: str) -> str:
    elsewhere = _elsewhere(results)
    out = ["# Performance: our attacks against peers and the hardware", "",
           f"Regenerate: `{command}` (writes this file and `results/perf.json`).", "",
           f"Machine: {_machine_text(results['machine'])}." + (" " + " ".join(elsewhere) if elsewhere else ""), "",
           "Hardware limit = (passes × the bare model's measured cost per pass at the same batch) ÷ wall time: "
           "1.0 means no time is spent outside the model's own forward/backward passes; above 1.0, the attack's "
           "(smaller, compacted) batches ran faster per example than the bare model at the full batch. "
           "Speed-up = peer's time ÷ ours. Peers return only adversarial inputs and their time excludes the "
           "forward pass that tells which succeeded; ours include it (FGSM: 3 passes per example against "
           "torchattacks' 2, hence its 0.6×).", ""]
    if "single" in results:
        out += ["## FGSM, PGD, C&W: ours vs torchattacks (pgd-at checkpoint, clean-correct points of the first "
                f"{results['args']['n']})", "",
                _table(results["single"], [("attack", "attack", ""), ("points", "points", ""),
                                           ("ours_s", "ours s", ".2f"), ("torchattacks_s", "torchattacks s", ".2f"),
                                           ("ratio", "speed-up", ".2f"), ("ours_robust", "ours robust", ".3f"),
                                           ("torchattacks_robust", "torchattacks robust", ".3f"),
                                           ("ours_passes", "ours passes/ex", ".1f"),
                                           ("torchattacks_passes", "torchattacks passes/ex", ".1f"),
                                           ("hardware_limit", "ours hardware limit", ".2f")]), ""]
    if "apgd" in results:
        out += ["## Our APGD vs pyautoattack's APGD (same points and seed; 100 iterations)", "",
                _table(results["apgd"], [("defense", "checkpoint", ""), ("attack", "attack", ""), ("points", "points", ""),
                                         ("ours_s", "ours s", ".1f"), ("pyautoattack_s", "pyautoattack s", ".1f"),
                                         ("ratio", "speed-up", ".2f"), ("agreement", "per-example agreement", ".4f"),
                                         ("ours_robust", "ours robust", ".3f"), ("pyautoattack_robust", "official robust", ".3f"),
                                         ("ours_passes", "ours fwd+bwd/ex", ".1f"),
                                         ("pyautoattack_passes", "official fwd+bwd/ex", ".1f"),
                                         ("ours_hardware_limit", "ours hw limit", ".2f"),
                                         ("pyautoattack_hardware_limit", "official hw limit", ".2f")]), ""]
    if "aa_fast" in results:
        out += [f"## aa-fast ({FAST_PROTOCOL}) vs the official aa (first points of the test set, seed 0)", "",
                _table(_with_missed_text(results["aa_fast"]),
                       AA_FAST_COLUMNS + [("aa_s", "aa s", ".1f"), ("aa_fast_s", "aa-fast s", ".1f"),
                                          ("ratio", "speed-up", ".2f"), ("source", "from", "")]), "",
                _aa_fast_summary(results["aa_fast"]), ""]
    if results.get("aa_fast_large"):
        out += [f"## aa-fast ({FAST_PROTOCOL}) vs the official aa on 1000 points (committed leaderboard records)", "",
                _table(_with_missed_text(results["aa_fast_large"]), AA_FAST_COLUMNS), "",
                _aa_fast_summary(results["aa_fast_large"]), ""]
    if "masked" in results:
        out += ["## Models built to mask gradients (examples/toy_models.py with the standard checkpoint's weights)", "",
                _table(_with_missed_text(results["masked"]),
                       [("defense", "model", ""), ("model", "what", ""), ("clean", "clean", ".3f")] + AA_FAST_COLUMNS[1:]
                       + [("aa_s", "aa s", ".1f"), ("aa_fast_s", "aa-fast s", ".1f"), ("ratio", "speed-up", ".2f")]), ""]
    for key, title in (("cascade", "`--cascade` vs a plain run (pgd-at)"),
                       ("shards", "torchrun: 2 gloo ranks vs 1 process (pgd-at)"),
                       ("overhead", "`aa` through the harness vs a direct pyautoattack call (pgd-at, one batch)"),
                       ("rss", "Peak resident memory of a full AutoAttack run"),
                       ("resnet", "Larger model: ResNet-18 on CIFAR-shaped random inputs, PGD ours vs torchattacks")):
        if key in results:
            out += [f"## {title}", "", _table([results[key]], [(k, k, ".3f" if isinstance(v, float) else "")
                                                               for k, v in results[key].items()]), ""]
    if "certify" in results:
        out += ["## Certification: `ibp`, `crown` and `milp` beside a forward pass and PGD-10 (same points, "
                "1 thread, float64 bounds)", "",
                _table(results["certify"], [("model", "model", ""), ("method", "method", ""), ("points", "points", ""),
                                            ("s", "s", ".2f"), ("ms_per_point", "ms/point", ".1f"),
                                            ("vs_forward", "× a forward pass", ".0f"), ("vs_pgd", "× PGD-10", ".1f"),
                                            ("certified", "certified", ""), ("pgd_robust", "PGD-10 robust", ""),
                                            ("refuted", "refuted", ""), ("undecided", "undecided", "")]), ""]
    return "\n".join(out)


GPU_PERF = REPO / "results" / "gpu" / "perf-gpu.json"  # written by `bench campaign import`


def render_gpu(gpu: dict[str, Any]) -> str:
    """The GPU campaign's rows (benchmarks/gpu_perf.py), measured alone on the GPU machine."""
    m = gpu["machine"]
    out = [f"## On a GPU: {m['gpu']} (torch {m['torch']}, CUDA {m['cuda']}, {m['cpu_cores']} cores; {m['date']})", "",
           "From the GPU campaign (`make gpu-campaign`, `benchmarks/gpu_perf.py`, imported with `bench campaign "
           "import`), run alone on the machine before the campaign's other jobs.", ""]
    tables: list[tuple[str, str, list[tuple[str, str, str]]]] = [
        ("ceilings", "Matmul ceilings measured there (TFLOP/s)",
         [("arithmetic", "arithmetic", ""), ("size", "n×n×n", ""), ("tflops", "TFLOP/s", ".1f")]),
        ("aa_overhead", "`aa` through the harness vs a direct pyautoattack call (pgd-at)",
         [("points", "points", ""), ("harness_s", "harness s", ".1f"), ("direct_s", "direct s", ".1f"),
          ("harness_points_per_s", "harness points/s", ".1f"), ("direct_points_per_s", "direct points/s", ".1f"),
          ("identical_flags", "identical flags", "")]),
        ("apgd", "Our APGD-CE vs pyautoattack's (pgd-at, clean-correct points)",
         [("points", "points", ""), ("ours_s", "ours s", ".2f"), ("pyautoattack_s", "pyautoattack s", ".2f"),
          ("ratio", "speed-up", ".2f"), ("agreement", "per-example agreement", ".4f")]),
        ("aa_fast", "aa-fast vs aa (pgd-at)",
         [("points", "points", ""), ("aa_s", "aa s", ".1f"), ("aa_fast_s", "aa-fast s", ".1f"),
          ("ratio", "speed-up", ".2f"), ("aa_robust", "aa robust", ".3f"), ("aa_fast_robust", "aa-fast robust", ".3f"),
          ("aa_broken_kept", "aa's breaks kept", ".3f")]),
        ("arithmetic", "PGD-20 + APGD through the harness by arithmetic (pgd-at; flags against fp32)",
         [("arithmetic", "arithmetic", ""), ("points", "points", ""), ("seconds", "s", ".2f"),
          ("speedup", "speed-up", ".2f"), ("flags_differing", "flags differing", "")]),
        ("large_models", "Larger models on CIFAR-shaped random inputs: PGD-10 against the bare fwd+bwd limit",
         [("model", "model", ""), ("arithmetic", "arithmetic", ""), ("batch", "batch", ""),
          ("fwd_bwd_images_per_s", "fwd+bwd images/s", ".0f"), ("pgd10_images_per_s", "PGD-10 images/s", ".0f"),
          ("share_of_fwd_bwd_limit", "share of the fwd+bwd limit", ".2f")]),
    ]
    for key, title, columns in tables:
        if key in gpu:
            rows = gpu[key] if isinstance(gpu[key], list) else [gpu[key]]
            out += [f"### {title}", "", _table(rows, columns), ""]
    return "\n".join(out)


def _with_gpu(markdown: str) -> str:
    if not GPU_PERF.is_file():
        return markdown
    return markdown.rstrip() + "\n\n" + render_gpu(json.loads(GPU_PERF.read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500, help="test points for the single-attack and APGD sections")
    parser.add_argument("--aa-n", type=int, default=200, help="test points for aa-fast vs aa (default 200: the "
                        "committed aa records cover them)")
    parser.add_argument("--aa-fresh", default="pgd-at,ancra,trades",
                        help="checkpoints whose official aa is re-run here for timing (the rest use their records)")
    parser.add_argument("--masked-n", type=int, default=100, help="test points for the masked-model rows")
    parser.add_argument("--aa-timed-n", type=int, default=200, help="test points of the back-to-back timing "
                        "runs of aa and aa-fast (the --aa-fresh checkpoints)")
    parser.add_argument("--defenses", help="comma-separated committed checkpoints (default: all)")
    parser.add_argument("--rss-n", type=int, default=10000, help="points of the peak-RSS AutoAttack run")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help="rerun only these; the others are kept from the existing results/perf.json")
    parser.add_argument("--quick", action="store_true", help="n=100, aa-n=40, rss-n=1000, two checkpoints "
                        "(the other flags still apply)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "perf.md")
    parser.add_argument("--render-only", action="store_true", help="rewrite perf.md from perf.json (and the GPU "
                        "campaign's results/gpu/perf-gpu.json), measuring nothing")
    args = parser.parse_args()
    if args.render_only:
        saved = json.loads(args.out.with_suffix(".json").read_text())
        atomic_write(args.out, (_with_gpu(render(saved, "make perf")) + "\n").encode())
        return
    if args.quick:
        args.n, args.aa_n, args.aa_timed_n, args.rss_n = 100, 40, 40, 1000
        args.defenses = args.defenses or "standard,pgd-at"
    defenses = args.defenses.split(",") if args.defenses else committed_defenses(DATASET)
    sections = set(args.sections.split(","))
    results: dict[str, Any] = {"machine": machine(), "args": vars(args) | {"out": str(args.out)}}
    previous = args.out.with_suffix(".json")
    if sections != set(SECTIONS) and previous.is_file():  # a partial rerun keeps the other sections
        kept = json.loads(previous.read_text())
        kept_on = kept.get("section_machine") or {k: kept["machine"] for k in SECTIONS if k in kept}
        results = {**{k: v for k, v in kept.items() if k not in sections}, **results,
                   "section_seconds": kept.get("section_seconds", {}),
                   "section_machine": {k: m for k, m in kept_on.items() if k not in sections}}
    print(f"machine: {results['machine']}", flush=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("single", lambda: section_single_attacks(args.n)),
            ("apgd", lambda: section_apgd(args.n, defenses)),
            ("aa_fast", lambda: section_aa_fast(args.aa_n, defenses, set(args.aa_fresh.split(",")), args.aa_timed_n,
                                                tmp / "aa")),
            ("aa_fast_large", lambda: section_aa_fast_large(defenses)),
            ("masked", lambda: section_masked(args.masked_n, tmp / "masked")),
            ("cascade", lambda: section_cascade(min(args.aa_n, 100), tmp / "cascade")),
            ("shards", lambda: section_shards(min(200, args.n), tmp / "shards")),
            ("overhead", lambda: section_overhead(min(100, args.aa_n), tmp / "overhead")),
            ("rss", lambda: section_rss(args.rss_n, tmp / "rss")),
            ("resnet", lambda: section_resnet(32 if not args.quick else 8)),
            ("certify", lambda: section_certify(1000 if not args.quick else 100, 100 if not args.quick else 10,
                                                50 if not args.quick else 5)),
        ]
        for key, step in steps:
            if key in sections:
                print(f"{key} ...", flush=True)
                start = time.perf_counter()
                results[key] = step()
                results.setdefault("section_seconds", {})[key] = round(time.perf_counter() - start, 1)
                results.setdefault("section_machine", {})[key] = results["machine"]
    command = "make perf" if not args.quick else "python benchmarks/perf.py --quick"
    atomic_write(args.out, (_with_gpu(render(results, command)) + "\n").encode())
    atomic_write(args.out.with_suffix(".json"), (json.dumps(results, indent=1, default=str) + "\n").encode())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
