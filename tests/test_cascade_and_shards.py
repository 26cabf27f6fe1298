"""Faster ways to the same numbers: cascade, torchrun shards, inference mode; and what they keep."""

import json
import os
import subprocess
import sys

import pytest
import torch

from bench.cli import main
from bench.records.curves import eps_curves
from bench.records.run_record import load_run_records
from tests.conftest import read_json

# cheap, batch-independent attacks plus an official AutoAttack stage (batch-dependent)
ATTACKS = "fgsm,pgd:steps=5,apgd:per_example_start=true,steps=10,apgd-ce"


def _record(args, capsys) -> dict:
    assert main(["run", *args, "--quiet", "--json"]) == 0
    return read_json(json.loads(capsys.readouterr().out)["record"])


def test_cascade_gives_the_worst_case_of_a_plain_run_with_fewer_passes(committed_robust, natural_ckpt, tmp_path,
                                                                        capsys):
    ckpt = "checkpoints/fashion-mnist/pgd-at-smallcnn.pt"
    common = ["--checkpoint", ckpt, "--attack", ATTACKS, "--n", "120", "--batch-size", "32"]
    plain = _record([*common, "--results-dir", str(tmp_path / "plain")], capsys)
    cascade = _record([*common, "--cascade", "--results-dir", str(tmp_path / "cascade")], capsys)
    pp, pc = plain["per_example"], cascade["per_example"]
    assert pc["clean_correct"] == pp["clean_correct"]
    assert pc["worst_case"] == pp["worst_case"]
    assert plain["worst_case"]["count"] < plain["clean"]["count"]  # something was broken
    assert cascade["purpose"] == "worst-case" and cascade["config"]["cascade"] is True
    passes = [sum(r["attacks"][a]["passes"]["backward"] for a in r["attacks"]) for r in (plain, cascade)]
    assert passes[1] < passes[0]
    # the official stage ran first, on every clean-correct point, exactly as in the plain run
    assert pc["robust"]["apgd-ce"] == pp["robust"]["apgd-ce"]
    # cumulative per-attack flags must not feed per-attack curves
    records = load_run_records(tmp_path / "cascade")
    assert eps_curves(records, "linf") == []


def test_cascade_and_eps_sweep_do_not_mix(natural_ckpt, tmp_path, capsys):
    code = main(["run", "--checkpoint", str(natural_ckpt), "--attack", "fgsm", "--cascade", "--eps-sweep",
                 "0.05,0.1", "--results-dir", str(tmp_path), "--quiet"])
    assert code == 2 and "per-attack" in capsys.readouterr().err


def _torchrun(nproc: int, out, extra=()) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["-m", "bench", "run", "--checkpoint", "checkpoints/fashion-mnist/pgd-at-smallcnn.pt",
            "--attack", ATTACKS, "--points", "90", "--batch-size", "16", "--results-dir", str(out), "--quiet", *extra]
    cmd = [sys.executable, *(["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
                             if nproc > 1 else []), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    found = list(out.glob("*.json"))
    assert len(found) == 1, found  # rank 0 alone writes the record
    return read_json(found[0])


@pytest.mark.subprocess
@pytest.mark.timeout(1300)
def test_two_gloo_ranks_give_the_record_of_one_process(tmp_path):
    one = _torchrun(1, tmp_path / "one")
    two = _torchrun(2, tmp_path / "two", ["--save-adv"])
    assert two["config"]["world_size"] == 2 and one["config"]["world_size"] == 1
    assert two["per_example"] == one["per_example"]  # flags, first breaker and margins, every attack
    for label, res in one["attacks"].items():
        assert two["attacks"][label]["passes"] == res["passes"]
    saved = torch.load(next((tmp_path / "two").glob("*.adv.pt")), weights_only=True)
    worst = [c == "1" and w == "0" for c, w in zip(one["per_example"]["clean_correct"],
                                                     one["per_example"]["worst_case"], strict=True)]
    assert saved["broken"].tolist() == worst


def test_save_adv_keeps_verified_adversarials_and_only_when_asked(natural_model, natural_ckpt, tmp_path, capsys):
    common = ["--checkpoint", str(natural_ckpt), "--attack", "fgsm,pgd:steps=3", "--n", "30"]
    _record([*common, "--results-dir", str(tmp_path / "plain")], capsys)
    assert not list((tmp_path / "plain").glob("*.pt"))
    record = _record([*common, "--save-adv", "--results-dir", str(tmp_path / "kept")], capsys)
    saved = torch.load(next((tmp_path / "kept").glob("*.adv.pt")), weights_only=True)
    from bench import data
    x, y = data.load("fashion-mnist", data.Split.TEST).batch(saved["index"].numpy())
    broken = saved["broken"]
    assert int(broken.sum()) == record["clean"]["count"] - record["worst_case"]["count"] > 0
    assert float((saved["x_adv"] - x).abs().amax()) <= 0.1 + 1e-6
    assert bool((natural_model.predict(saved["x_adv"][broken]) != y[broken]).all())
    assert torch.equal(saved["x_adv"][~broken], x[~broken])


def test_bf16_attacks_are_verified_in_fp32_and_recorded(natural_ckpt, tmp_path, capsys):
    record = _record(["--checkpoint", str(natural_ckpt), "--attack", "fgsm,pgd:steps=5", "--n", "40",
                      "--precision", "bf16", "--results-dir", str(tmp_path)], capsys)
    assert record["provenance"]["precision"] == "bf16"
    assert record["worst_case"]["count"] < record["clean"]["count"]


def test_fp16_on_cpu_is_refused(natural_ckpt, tmp_path, capsys):
    code = main(["run", "--checkpoint", str(natural_ckpt), "--attack", "fgsm", "--n", "5", "--device", "cpu",
                 "--precision", "fp16", "--results-dir", str(tmp_path), "--quiet"])
    assert code == 2 and "fp16 needs CUDA" in capsys.readouterr().err


@pytest.mark.slow
def test_compiled_model_gives_the_flags_of_the_eager_one(natural_ckpt, tmp_path, capsys):
    common = ["--checkpoint", str(natural_ckpt), "--attack", "fgsm,pgd:steps=5", "--n", "40"]
    eager = _record([*common, "--results-dir", str(tmp_path / "eager")], capsys)
    compiled = _record([*common, "--compile", "--results-dir", str(tmp_path / "compiled")], capsys)
    assert compiled["provenance"]["compile"] is True
    assert compiled["per_example"]["worst_case"] == eager["per_example"]["worst_case"]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fp16_run_verifies_in_fp32(natural_ckpt, tmp_path, capsys):
    record = _record(["--checkpoint", str(natural_ckpt), "--attack", "fgsm,pgd:steps=5,aa-fast", "--n", "100",
                      "--device", "cuda", "--precision", "fp16", "--channels-last",
                      "--results-dir", str(tmp_path)], capsys)
    assert record["provenance"]["precision"] == "fp16"
