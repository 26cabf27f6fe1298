"""The GPU campaign cannot rot while no GPU is around: its dry run (every job, CPU, toy sizes)
passes, and `bench campaign import` validates and merges what it sent back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from bench.cli import main
from bench.records.schema import load_records
from tests.conftest import REPO, committed_results

pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(1600)]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> Path:
    out, work = tmp_path_factory.mktemp("out"), tmp_path_factory.mktemp("work")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "benchmarks/gpu_campaign.py", "--dry-run", "--workers", "2",
                           "--deadline-s", "1200", "--out", str(out), "--work", str(work)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def test_the_dry_run_passes_every_job_and_sends_back_few_files(dry_run):
    manifest = json.loads((dry_run / "manifest.json").read_text())
    failed = [j for j in manifest["jobs"] if j["status"] != "passed"]
    assert not failed, failed
    groups = {j["group"] for j in manifest["jobs"]}
    assert groups == {"perf", "cuda-tests", "eval-cheap", "eval-aa", "eval-adaptive", "train", "eval-trained"}
    sent = sorted(p.name for p in dry_run.iterdir())
    assert sent == ["campaign-checkpoints.tar.gz", "campaign-results.tar.gz", "campaign.log", "manifest.json"]
    assert all(p.stat().st_size < 16 << 20 for p in dry_run.iterdir())
    with tarfile.open(dry_run / "campaign-results.tar.gz") as tar:
        names = tar.getnames()
    assert {"perf-gpu.json", "cuda-report.jsonl", "cuda-tests.xml", "manifest.json"} <= set(names)
    assert not [n for n in names if "/." in n or n.endswith(".train-state.pt")]


def test_import_validates_merges_and_is_idempotent(dry_run, tmp_path, capsys):
    results = committed_results(tmp_path)
    runs, ckpts = results / "runs", tmp_path / "checkpoints"
    committed = set(runs.glob("*.json"))
    before = len(committed)
    archives = [str(dry_run / "campaign-results.tar.gz"), str(dry_run / "campaign-checkpoints.tar.gz")]
    assert main(["campaign", "import", *archives, "--results-dir", str(runs), "--checkpoint-dir", str(ckpts)]) == 0
    first = capsys.readouterr().out
    added = len(list(runs.glob("*.json"))) - before
    # 3 defenses × (cheap, aa) + ancra's adaptive + 3 trained checkpoints' evaluations
    assert added == 10, first
    trained = sorted(p.name for p in (ckpts / "fashion-mnist-full").glob("*.pt"))
    assert trained == ["ancra-smallcnn-ra.pt", "pgd-at-smallcnn.pt", "standard-smallcnn.pt"]
    load_records(runs)  # every record, the imported ones among them, validates
    imported = [json.loads(p.read_text()) for p in set(runs.glob("*.json")) - committed]
    full = [r for r in imported if r["model"]["path"].startswith(str(ckpts)) or "fashion-mnist-full" in r["model"]["path"]]
    assert len(full) == 3 and all(r["model"]["training_budget"]["name"] == "full" for r in full)
    assert (results / "gpu" / "perf-gpu.json").is_file() and (results / "gpu" / "manifest.json").is_file()
    assert "### Training budget `full`" in (results / "LEADERBOARD.md").read_text()
    assert main(["campaign", "import", *archives, "--results-dir", str(runs), "--checkpoint-dir", str(ckpts)]) == 0
    assert "imported 0 records (10 already present)" in capsys.readouterr().out
