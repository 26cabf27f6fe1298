"""torchrun with 2 CPU processes (gloo) trains a checkpoint as good as one process does."""

import os
import subprocess
import sys

import pytest

from defenses.training import checkpoints

# AFD fine-tunes the committed natural model, so a short run already has a meaningful quality;
# it also exercises the teacher, the EMA and two parameter groups under data parallelism.
ARGS = ["train", "--defense", "afd", "--epochs", "1", "--batch-size", "64", "--attack-steps", "3",
        "--max-train-points", "1024", "--quiet"]


def _train(out, nproc: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if nproc == 1:
        cmd = [sys.executable, "-m", "bench", *ARGS, "--out", str(out)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
               "-m", "bench", *ARGS, "--out", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return checkpoints.read_sidecar(out)


@pytest.mark.subprocess
@pytest.mark.timeout(1300)
def test_two_process_training_matches_one_process_quality(tmp_path):
    single = _train(tmp_path / "single.pt", 1)
    ddp = _train(tmp_path / "ddp.pt", 2)
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    model, _ = checkpoints.load(tmp_path / "ddp.pt")
    for metric in ("clean", "robust"):
        assert abs(ddp["held_out"][metric] - single["held_out"][metric]) <= 0.05, (metric, ddp, single)
    assert ddp["held_out"]["robust"] > 0.3
