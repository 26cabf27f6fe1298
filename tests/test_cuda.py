"""The CUDA paths, checked on a GPU (`pytest -m cuda`; skipped where there is none).

Every attack on CUDA is compared with the same attack on CPU on the same points; the official
AutoAttack through the harness with a direct pyautoattack call; reduced precision and
`torch.compile` runs must verify every success in IEEE fp32; the OOM-halving path is forced;
training runs an epoch on CUDA and resumes; a one-rank NCCL torchrun evaluates and trains.
Measured agreement and margin differences go to $BENCH_CUDA_REPORT (a JSON-lines file) when set:
the GPU campaign collects them. BENCH_GPU_TEST_DEVICE=cpu runs the same tests with the CPU standing
in for the GPU (the campaign's dry run does, so that the tests themselves cannot rot); the cases
that only CUDA has (fp16, tf32, out-of-memory, NCCL) are skipped then.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.attacks import build_attack
from bench.cli import main
from bench.evaluation import harness
from bench.loading.model import ModelUnderTest
from bench.provenance import device_name
from bench.threat import Norm, ThreatModel
from defenses import DEFENSES
from defenses.training import checkpoints
from tests.conftest import COMMITTED, REPO, read_json
from tests.interrupt import train_until_interrupted

GPU = os.environ.get("BENCH_GPU_TEST_DEVICE", "cuda")
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(GPU == "cuda" and not torch.cuda.is_available(), reason="needs CUDA")]
only_cuda = pytest.mark.skipif(GPU != "cuda", reason="CUDA only (the CPU stands in for the GPU)")

LINF = ThreatModel(Norm.LINF, 0.1)
L2 = ThreatModel(Norm.L2, 1.5)
N = int(os.environ.get("BENCH_GPU_TEST_POINTS", "200"))  # points of the CPU/CUDA comparisons
SPEED_POINTS = max(3 * N // 2, 12)  # points of the precision comparisons (300 on a GPU)
PGD_AT = COMMITTED / "pgd-at-smallcnn.pt"


def report(**row: object) -> None:
    path = os.environ.get("BENCH_CUDA_REPORT")
    if path:
        with open(path, "a") as handle:
            handle.write(json.dumps(row) + "\n")


def _model(device: str) -> ModelUnderTest:
    module, _ = checkpoints.load(PGD_AT)
    return ModelUnderTest(module, 10).to(device)


@pytest.fixture(scope="module")
def both(fmnist_test) -> tuple[ModelUnderTest, ModelUnderTest, torch.Tensor, torch.Tensor]:
    x, y = fmnist_test.batch(slice(0, N))
    return _model("cpu"), _model(GPU), x, y


# Ours draw their randomness from per-example CPU generators, so CPU and CUDA start from the same
# points and differ only by float arithmetic. The official components draw on the model's device
# (different random streams): only their robust accuracy is compared.
OURS = [("fgsm", LINF), ("pgd", LINF), ("cw", LINF), ("apgd", LINF), ("apgd-targeted:targets=3", LINF),
        ("pgd", L2), ("cw-l2:steps=20,binary_steps=3", L2)]
OFFICIAL = [("apgd-ce", LINF), ("apgd-t", LINF), ("fab-t", LINF), ("square-long:queries=500", LINF), ("aa-fast", LINF)]


def _run(spec: str, threat: ThreatModel, model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor
         ) -> tuple[np.ndarray, np.ndarray]:
    """Per example: robust (after fp32 verification, as the harness counts) and the margin."""
    name, _, params = spec.partition(":")
    attack = build_attack(name, dict(p.split("=") for p in params.split(",")) if params else None)
    xd, yd = x.to(model.device), y.to(model.device)
    with model.attack_mode():
        clean = (model.predict(x) == y).numpy()
        alive = torch.from_numpy(clean).to(model.device)
        x_adv, success = xd.clone(), torch.zeros_like(alive)
        for stage in attack.stages():
            todo = alive.nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            out = harness._run_stage(stage, model, xd[todo], yd[todo], threat, 0)
            held = harness.verify_successes(model, xd[todo], out.x_adv, yd[todo], out.success, threat, spec)
            x_adv[todo] = out.x_adv
            success[todo] |= held
            alive[todo] &= ~held
        margin = model.true_class_margin(x_adv, yd).numpy()
    return clean & ~success.cpu().numpy(), margin


@pytest.mark.parametrize("spec,threat", OURS, ids=[f"{s}-{t.norm.value}" for s, t in OURS])
def test_our_attacks_give_the_same_flags_on_cuda_as_on_cpu(both, spec, threat):
    cpu, cuda, x, y = both
    robust_cpu, margin_cpu = _run(spec, threat, cpu, x, y)
    robust_gpu, margin_gpu = _run(spec, threat, cuda, x, y)
    disagree = int((robust_cpu != robust_gpu).sum())
    delta = np.abs(margin_cpu - margin_gpu)
    report(test="cpu-vs-cuda", attack=spec, norm=threat.norm.value, points=N, disagree=disagree,
           robust_cpu=int(robust_cpu.sum()), robust_cuda=int(robust_gpu.sum()),
           margin_abs_diff_median=float(np.median(delta)), margin_abs_diff_max=float(delta.max()))
    assert disagree <= max(1, N // 100), (spec, disagree)  # boundary points may go either way (≤ 1%)
    assert float(np.median(delta)) < 1e-3


@pytest.mark.parametrize("spec,threat", OFFICIAL, ids=[s for s, _ in OFFICIAL])
def test_official_attacks_reach_the_same_robust_accuracy_on_cuda(both, spec, threat):
    cpu, cuda, x, y = both
    robust_cpu, _ = _run(spec, threat, cpu, x, y)
    robust_gpu, _ = _run(spec, threat, cuda, x, y)
    disagree = int((robust_cpu != robust_gpu).sum())
    report(test="cpu-vs-cuda", attack=spec, norm=threat.norm.value, points=N, disagree=disagree,
           robust_cpu=int(robust_cpu.sum()), robust_cuda=int(robust_gpu.sum()))
    # different random streams: the counts, not the points, must match (within 3% of the points)
    assert abs(int(robust_cpu.sum()) - int(robust_gpu.sum())) <= max(2, round(0.03 * N)), spec


def _record(args: list[str], capsys) -> dict:
    assert main(["run", *args, "--quiet", "--json"]) == 0
    return read_json(json.loads(capsys.readouterr().out)["record"])


def test_official_aa_through_the_harness_equals_a_direct_call_on_cuda(fmnist_test, tmp_path, capsys):
    import logging

    from pyautoattack import AutoAttack

    n, batch, eps = min(N, 100), min(N, 100), 0.1
    record = _record(["--checkpoint", str(PGD_AT), "--attack", "aa", "--n", str(n), "--eps", str(eps),
                      "--batch-size", str(batch), "--device", GPU, "--results-dir", str(tmp_path)], capsys)
    ours = np.array([c == "1" for c in record["per_example"]["robust"]["aa"]])
    model = _model(GPU)
    x, y = fmnist_test.batch(slice(0, n))
    with model.attack_mode():
        aa = AutoAttack(model, device=GPU, eps=eps, norm="Linf", seed=0, version="standard")
        logging.getLogger("auto-attack").setLevel(logging.WARNING)
        _, y_adv = aa.run_standard_evaluation(x.to(GPU), y.to(GPU), batch_size=batch)
    direct = (y_adv.cpu() == y).numpy()
    report(test="aa-harness-vs-direct", points=n, harness_robust=int(ours.sum()), direct_robust=int(direct.sum()),
           disagree=int((ours != direct).sum()))
    assert np.array_equal(ours, direct)
    assert 0 < direct.sum() < record["clean"]["count"]  # not vacuous


@pytest.mark.parametrize("speed", [["--precision", "tf32"], ["--precision", "bf16"], ["--precision", "fp16"],
                                   ["--compile"], ["--precision", "bf16", "--channels-last"]],
                         ids=["tf32", "bf16", "fp16", "compile", "bf16-channels-last"])
def test_reduced_precision_and_compiled_runs_verify_in_fp32(tmp_path, capsys, speed):
    """Same flags as fp32 up to points that flip with the arithmetic; every counted success holds
    in IEEE fp32 (the harness re-verifies, so a recorded break is a real fp32 break)."""
    if GPU != "cuda" and speed[-1] in ("tf32", "fp16"):
        pytest.skip("CUDA only")
    common = ["--checkpoint", str(PGD_AT), "--attack", "fgsm,pgd,apgd", "--n", str(SPEED_POINTS), "--device", GPU]
    ref = _record([*common, "--results-dir", str(tmp_path / "fp32")], capsys)
    fast = _record([*common, *speed, "--results-dir", str(tmp_path / "fast")], capsys)
    margins = {a: np.array(m) for a, m in fast["per_example"]["margin"].items()}
    disagree = {a: sum(p != q for p, q in zip(ref["per_example"]["robust"][a], fast["per_example"]["robust"][a], strict=True))
                for a in ("fgsm", "pgd", "apgd")}
    report(test="speed-flags", speed=" ".join(speed), points=SPEED_POINTS, disagree=disagree,
           worst_fp32=ref["worst_case"]["count"], worst_fast=fast["worst_case"]["count"],
           warnings=fast["warnings"])
    for attack, flags in fast["per_example"]["robust"].items():
        broken = np.array([c == "0" for c in flags]) & np.array([c == "1" for c in fast["per_example"]["clean_correct"]])
        assert (margins[attack][broken] < 0).all(), attack  # recorded margins are fp32 reference margins
    assert sum(disagree.values()) <= max(1, 3 * SPEED_POINTS // 100), disagree  # ≤ 1% of point × attack pairs
    assert fast["provenance"]["precision"] == (speed[1] if speed[0] == "--precision" else "fp32")


@only_cuda
def test_out_of_memory_halves_the_batch_and_keeps_the_flags(fmnist_test, monkeypatch):
    """A batch-independent stage that runs out of GPU memory is split in halves: forced here by
    raising OutOfMemoryError above a batch size, and for real by capping the memory fraction."""
    model = _model("cuda")
    x, y = (t.cuda() for t in fmnist_test.batch(slice(0, 256)))
    stage = build_attack("pgd", {"steps": "5"}).stages()[0]
    with model.attack_mode():
        whole = harness._run_stage(stage, model, x, y, LINF, 0)
        real_run, sizes = type(stage).run, []

        def capped(self, m, xb, yb, threat, seed):
            sizes.append(xb.shape[0])
            if xb.shape[0] > 64:
                raise torch.OutOfMemoryError("CUDA out of memory (forced by the test)")
            return real_run(self, m, xb, yb, threat, seed)

        monkeypatch.setattr(type(stage), "run", capped)
        split = harness._run_stage(stage, model, x, y, LINF, 0)
    assert sizes[:3] == [256, 128, 64] and max(sizes[3:]) <= 64
    assert torch.equal(whole.success, split.success)
    assert torch.allclose(whole.x_adv, split.x_adv, atol=1e-6)


@only_cuda
def test_a_real_out_of_memory_error_is_caught_with_a_capped_memory_fraction():
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(min(1.0, (torch.cuda.memory_allocated() + (256 << 20)) / total))
    try:
        model = _model("cuda")
        x = torch.rand(4096, 1, 28, 28, device="cuda")
        y = torch.zeros(4096, dtype=torch.long, device="cuda")
        stage = build_attack("pgd", {"steps": "2"}).stages()[0]
        with model.attack_mode():
            try:  # the uncapped batch must not fit, or the test shows nothing
                big = torch.empty(512 << 20, dtype=torch.uint8, device="cuda")
                del big
                pytest.fail("the memory cap did not take effect")
            except torch.OutOfMemoryError:
                pass
            out = harness._run_stage(stage, model, x, y, LINF, 0)
        assert out.success.shape[0] == 4096
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()


def _bench(args: list[str], timeout: int = 300, torchrun: bool = False) -> subprocess.CompletedProcess[str]:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1"]
                if torchrun else [sys.executable])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([*launcher, "-m", "bench", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env=env)


TRAIN = ["train", "--epochs", "1", "--max-train-points", "1024", "--batch-size", "128", "--attack-steps", "3",
         "--device", GPU, "--quiet"]


@pytest.mark.parametrize("defense", DEFENSES.names())
def test_every_defense_trains_an_epoch_on_cuda(tmp_path, defense):
    from defenses.training import trainer

    # every epoch of the recipe (staged methods select only in their last stage), 3 batches each
    job = trainer.resolve_job(defense, "fashion-mnist", {"attack_steps": 3}, tmp_path / f"{defense}.pt",
                              max_train_points=1024, val_points=200, max_batches=3, quiet=True, device=GPU)
    sidecar = trainer.train(job)
    report(test="train-cuda", defense=defense, seconds=sidecar["train_seconds"], held_out=sidecar["held_out"])
    assert sidecar["provenance"]["device"] == device_name(torch.device(GPU))
    module, _ = checkpoints.load(job.out)  # a CPU-loadable checkpoint
    assert next(module.parameters()).device.type == "cpu"


def test_cuda_training_resumes_after_an_interruption(tmp_path, monkeypatch):
    from defenses.training import trainer

    def job(out: Path) -> trainer.TrainJob:
        return trainer.resolve_job("pgd-at", "fashion-mnist", {"epochs": 2, "batch_size": 128, "attack_steps": 3},
                                   out, max_train_points=2048, quiet=True, device=GPU)

    straight = trainer.train(job(tmp_path / "straight.pt"))
    interrupted = job(tmp_path / "resumed.pt")
    train_until_interrupted(interrupted, monkeypatch)
    assert interrupted.out.with_suffix(".train-state.pt").is_file()
    resumed = trainer.train(dataclasses.replace(interrupted, resume=True))
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    report(test="train-resume-cuda", straight=straight["held_out"], resumed=resumed["held_out"])
    # CUDA kernels are not bit-deterministic: the resumed run must match closely, not exactly
    for metric in ("clean", "robust"):
        assert abs(resumed["held_out"][metric] - straight["held_out"][metric]) <= 0.05, metric


def test_one_rank_nccl_torchrun_evaluates_and_trains(tmp_path):
    run = _bench(["run", "--checkpoint", str(PGD_AT), "--attack", "fgsm,pgd", "--points", "200", "--device", GPU,
                  "--results-dir", str(tmp_path / "runs"), "--json", "--quiet"], torchrun=True)
    assert run.returncode == 0, run.stderr[-2000:]
    record = read_json(json.loads(run.stdout.strip().splitlines()[-1])["record"])
    assert record["config"]["world_size"] == 1
    train = _bench([*TRAIN, "--defense", "pgd-at", "--epochs", "1", "--out", str(tmp_path / "ddp.pt")], torchrun=True)
    assert train.returncode == 0, train.stderr[-2000:]
    assert checkpoints.read_sidecar(tmp_path / "ddp.pt")["distributed_backend"] == ("nccl" if GPU == "cuda" else "gloo")
    report(test="torchrun-nccl", ok=True)


@only_cuda
def test_run_picks_cuda_by_default(tmp_path, capsys):
    record = _record(["--checkpoint", str(PGD_AT), "--attack", "fgsm", "--n", "50",
                      "--results-dir", str(tmp_path)], capsys)
    assert record["config"]["device"] == "auto" and record["provenance"]["device"] != "cpu"
