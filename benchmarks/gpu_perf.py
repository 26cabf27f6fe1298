"""GPU performance rows for results/perf.md, measured in one run on one machine (the GPU campaign).

Sections, each timed with the device synchronized:
1. ceilings: matmul TFLOP/s measured here (IEEE fp32, TF32, bf16) — the machine's own limits;
2. aa through the harness vs a direct pyautoattack call on the same points (points/s, same flags?);
3. our APGD-CE vs pyautoattack's APGD-CE on the same clean-correct points;
4. aa-fast vs aa through the harness on the same points;
5. arithmetic: PGD-20 and APGD through the harness in fp32, tf32, bf16 and compiled — time and
   per-example flags against fp32;
6. larger models on CIFAR-shaped random inputs (ResNet-18, WRN-34-10): bare forward+backward
   images/s, PGD-10 images/s, and the attack's share of the bare fwd+bwd limit.

Usage: python benchmarks/gpu_perf.py --out perf-gpu.json [--quick]   (--quick: toy sizes, any device)
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import data  # noqa: E402
from bench.attacks import build_attack, parse_attacks  # noqa: E402
from bench.evaluation.committed import committed_checkpoint  # noqa: E402
from bench.evaluation.config import RunConfig  # noqa: E402
from bench.evaluation.harness import evaluate  # noqa: E402
from bench.loading.model import ModelUnderTest, Precision, Speed, tensor_cores_for_fp32  # noqa: E402
from bench.threat import Norm, ThreatModel  # noqa: E402
from defenses.nets.archs import ARCHS  # noqa: E402
from defenses.training import checkpoints  # noqa: E402

DATASET = "fashion-mnist"
LINF = ThreatModel(Norm.LINF, 0.1)
SECTIONS = ("ceilings", "aa_overhead", "apgd", "aa_fast", "arithmetic", "large_models")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


T = TypeVar("T")


def clock(device: torch.device, work: Callable[[], T]) -> tuple[float, T]:
    sync(device)
    start = time.perf_counter()
    out = work()
    sync(device)
    return time.perf_counter() - start, out


def repeat_for(device: torch.device, work: Callable[[], object], seconds: float) -> float:
    """Seconds per call, after one warm-up call, over at least `seconds` of calls."""
    work()
    sync(device)
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        work()
        calls += 1
        sync(device)
    return (time.perf_counter() - start) / calls


def machine(device: torch.device) -> dict[str, Any]:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    return {"gpu": gpu, "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
            "cpu_cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def committed(defense: str, device: torch.device) -> ModelUnderTest:
    path = committed_checkpoint(DATASET, defense)
    assert path is not None, defense
    module, _ = checkpoints.load(path)
    return ModelUnderTest(module, 10).to(device)


def section_ceilings(device: torch.device, size: int) -> list[dict[str, Any]]:
    rows = []
    for label, dtype, tf32 in (("fp32 (IEEE)", torch.float32, False), ("tf32", torch.float32, True),
                               ("bf16", torch.bfloat16, False)):
        if device.type != "cuda" and label != "fp32 (IEEE)":
            continue
        a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
        with tensor_cores_for_fp32(tf32):
            seconds = repeat_for(device, functools.partial(torch.matmul, a, b), 1.0)
        rows.append({"arithmetic": label, "size": size, "tflops": 2 * size ** 3 / seconds / 1e12})
    return rows


def _harness(attacks: str, defense: str, n: int, results: Path, device: torch.device, **extra: Any
             ) -> dict[str, Any]:
    cfg = RunConfig(dataset=DATASET, threat=LINF, attack_specs=parse_attacks(attacks), defense=defense, n=n, results_dir=results,
                    quiet=True, device=str(device), batch_size=n, **extra)
    path = evaluate(cfg).record_path
    assert path is not None, "the campaign's runs write their records"
    return json.loads(path.read_text())  # the JSON as written: flags compare as the record's strings


def section_aa_overhead(device: torch.device, n: int, tmp: Path) -> dict[str, Any]:
    import logging

    from pyautoattack import AutoAttack

    record = _harness("aa", "pgd-at", n, tmp / "aa", device)
    model = committed("pgd-at", device)
    x, y = (t.to(device) for t in data.load(DATASET, data.Split.TEST).batch(slice(0, n)))
    with model.attack_mode():
        aa = AutoAttack(model, device=device, eps=LINF.eps, norm="Linf", seed=0, version="standard")
        logging.getLogger("auto-attack").setLevel(logging.WARNING)
        direct_s, out = clock(device, lambda: aa.run_standard_evaluation(x, y, batch_size=n))
    y_adv = out[1]
    direct = [str(int(v)) for v in (y_adv == y).int().tolist()]
    harness_s = record["attacks"]["aa"]["seconds"]
    return {"defense": "pgd-at", "points": n, "harness_s": harness_s, "direct_s": direct_s,
            "harness_points_per_s": n / harness_s, "direct_points_per_s": n / direct_s,
            "harness_robust": record["attacks"]["aa"]["robust_accuracy"],
            "direct_robust": direct.count("1") / n,
            "identical_flags": record["per_example"]["robust"]["aa"] == "".join(direct), "aa_record": record}


def section_apgd(device: torch.device, n: int) -> dict[str, Any]:
    from pyautoattack.autopgd_base import APGDAttack

    model = committed("pgd-at", device)
    x, y = (t.to(device) for t in data.load(DATASET, data.Split.TEST).batch(slice(0, n)))
    with model.attack_mode():
        keep = model.predict(x).to(device) == y
        x, y = x[keep], y[keep]
        ours = build_attack("apgd")
        ours_s, out = clock(device, lambda: ours.run(model, x, y, LINF, 0))
        theirs = APGDAttack(model, norm="Linf", eps=LINF.eps, n_iter=100, n_restarts=1, seed=0, device=device)
        theirs_s, x_adv = clock(device, lambda: theirs.perturb(x, y))
        ours_robust = (model.predict(out.x_adv).to(device) == y)
        theirs_robust = (model.predict(x_adv).to(device) == y)
    return {"defense": "pgd-at", "points": int(y.numel()), "ours_s": ours_s, "pyautoattack_s": theirs_s,
            "ratio": theirs_s / ours_s, "ours_robust": float(ours_robust.float().mean()),
            "pyautoattack_robust": float(theirs_robust.float().mean()),
            "agreement": float((ours_robust == theirs_robust).float().mean())}


def section_aa_fast(device: torch.device, n: int, tmp: Path, aa_record: dict[str, Any]) -> dict[str, Any]:
    fast = _harness("aa-fast", "pgd-at", n, tmp / "aa-fast", device)
    a, b = fast["attacks"]["aa-fast"], aa_record["attacks"]["aa"]
    flags_a, flags_b = fast["per_example"]["robust"]["aa-fast"], aa_record["per_example"]["robust"]["aa"]
    return {"defense": "pgd-at", "points": n, "aa_s": b["seconds"], "aa_fast_s": a["seconds"],
            "ratio": b["seconds"] / a["seconds"], "aa_robust": b["robust_accuracy"], "aa_fast_robust": a["robust_accuracy"],
            "aa_broken_kept": sum(p == "0" for p, q in zip(flags_a, flags_b, strict=True) if q == "0")
            / max(1, flags_b.count("0"))}


def section_arithmetic(device: torch.device, n: int, tmp: Path, with_compile: bool) -> list[dict[str, Any]]:
    attacks = "pgd,apgd"
    variants: list[tuple[str, Speed]] = [("fp32", Speed())]
    if device.type == "cuda":
        variants += [("tf32", Speed(Precision.TF32)), ("bf16", Speed(Precision.BF16)),
                     ("bf16, channels-last", Speed(Precision.BF16, channels_last=True))]
    if with_compile:
        variants.append(("fp32, compiled", Speed(compile=True)))
    rows: list[dict[str, Any]] = []
    reference: tuple[float, dict[str, str]] | None = None
    for label, speed in variants:
        if speed.compile:  # the first compiled call pays the compilation: warm up on a few points
            _harness(attacks, "pgd-at", min(n, 64), tmp / f"warm-{len(rows)}", device, speed=speed)
        record = _harness(attacks, "pgd-at", n, tmp / f"speed-{len(rows)}", device, speed=speed)
        seconds = sum(record["attacks"][a]["seconds"] for a in ("pgd", "apgd"))
        flags = {a: record["per_example"]["robust"][a] for a in ("pgd", "apgd")}
        reference = reference or (seconds, flags)
        rows.append({"arithmetic": label, "attacks": attacks, "points": n, "seconds": seconds,
                     "speedup": reference[0] / seconds,
                     "flags_differing": sum(p != q for a in flags for p, q in zip(flags[a], reference[1][a], strict=True)),
                     "robust_pgd": record["attacks"]["pgd"]["robust_accuracy"],
                     "robust_apgd": record["attacks"]["apgd"]["robust_accuracy"], "warnings": record["warnings"]})
    return rows


def _large_model_row(device: torch.device, arch: str, label: str, model: ModelUnderTest, batch: int,
                     seconds: float) -> dict[str, Any]:
    threat = ThreatModel(Norm.LINF, 8 / 255)
    x = torch.rand(batch, 3, 32, 32, device=device)
    with model.attack_mode():
        y = model.predict(x).to(device)

        def fwd_bwd() -> object:
            z = x.clone().requires_grad_(True)
            return torch.autograd.grad(model(z).sum(), z)

        per_call = repeat_for(device, fwd_bwd, seconds)
        attack = build_attack("pgd", {"steps": "10"})
        attack_s, _ = clock(device, lambda: attack.run(model, x, y, threat, 0))
    passes = 11  # 10 gradient steps + the final forward (counted as a full pass: an upper bound)
    return {"model": f"{arch}, 3x32x32", "arithmetic": label, "batch": batch,
            "fwd_bwd_images_per_s": batch / per_call, "pgd10_images_per_s": batch / attack_s,
            "share_of_fwd_bwd_limit": passes * per_call / attack_s}


def section_large_models(device: torch.device, batch: int, seconds: float) -> list[dict[str, Any]]:
    spec = data.DATASETS.get("cifar10")
    rows = []
    for arch in ("resnet18", "wrn-34-10"):
        torch.manual_seed(0)
        module = ARCHS.get(arch)(spec)
        for label, speed in (("fp32", Speed()), ("bf16", Speed(Precision.BF16))):
            if label == "bf16" and device.type != "cuda":
                continue
            rows.append(_large_model_row(device, arch, label, ModelUnderTest(module, 10, speed=speed).to(device),
                                         batch, seconds))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write (rewritten after each section)")
    parser.add_argument("--n", type=int, default=1000, help="test points for the Fashion-MNIST sections")
    parser.add_argument("--quick", action="store_true", help="toy sizes (the campaign's dry run)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile row")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    n = 6 if args.quick else args.n
    results: dict[str, Any] = {"machine": machine(device), "n": n, "quick": args.quick, "section_seconds": {}}
    sections = set(args.sections.split(","))
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        aa_record: dict[str, Any] = {}
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("ceilings", lambda: section_ceilings(device, 512 if args.quick else 8192)),
            ("aa_overhead", lambda: section_aa_overhead(device, n, tmp)),
            ("apgd", lambda: section_apgd(device, n)),
            ("aa_fast", lambda: section_aa_fast(device, n, tmp, aa_record)),
            ("arithmetic", lambda: section_arithmetic(device, 32 if args.quick else 2000, tmp, not args.no_compile)),
            ("large_models", lambda: section_large_models(device, 4 if args.quick else 256, 0.2 if args.quick else 1.0)),
        ]
        for key, step in steps:
            if key not in sections or (key == "aa_fast" and not aa_record):
                continue
            start = time.perf_counter()
            value = step()
            if key == "aa_overhead":
                aa_record = value.pop("aa_record")
            results[key] = value
            results["section_seconds"][key] = round(time.perf_counter() - start, 1)
            print(f"{key}: {json.dumps(value)[:600]}", flush=True)
            args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
