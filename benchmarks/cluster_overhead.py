"""What a SLURM job costs a sweep beyond its attacks: submit-to-start and start-to-first-batch.

Starts the tests' single-node cluster (tests/slurm.py: needs root and Debian's slurm-wlm and munge),
submits `--jobs` one-checkpoint sweeps one after another (each waits for the last, so they never
share the cores), and times each job from the poller's side: submit → the job's ledger says
"running" (sbatch, scheduling, srun, Python and torch imported) → the first batch's progress saved
→ the record written; beside it, the same cells run in this process.

Usage: python benchmarks/cluster_overhead.py [--jobs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.cli import main  # noqa: E402
from tests import slurm  # noqa: E402

CHECKPOINT = REPO / "checkpoints" / "fashion-mnist" / "pgd-at-smallcnn"
ARGS = ["--attack", "pgd:steps=10", "--n", "200", "--batch-size", "50", "--quiet"]


def _watch(runs: Path, marks: dict[str, float], stop: threading.Event) -> None:
    """Poll every 10 ms: when the job said it runs, saved its first batch, wrote its record."""
    while not stop.is_set():
        now = time.perf_counter()
        if "start" not in marks and any(runs.glob(".sweeps/*/*.state.json")):
            marks["start"] = now
        for state in runs.glob(".state/fashion-mnist-*.json"):
            try:
                (progress,) = json.loads(state.read_text())["progress"].values()
            except (OSError, ValueError):
                continue
            if progress["batch"] >= 1 and "first_batch" not in marks:
                marks["first_batch"] = now
        if "record" not in marks and any(runs.glob("*.json")):
            marks["record"] = now
        time.sleep(0.01)


def main_(jobs: int) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    why = slurm.unavailable()
    if why:
        raise SystemExit(why)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "ckpts"
        folder.mkdir()
        for suffix in (".pt", ".json"):
            (folder / f"pgd-at{suffix}").write_bytes(CHECKPOINT.with_suffix(suffix).read_bytes())
        cluster = slurm.Cluster(root / "slurm")
        os.environ.update(cluster.start())
        rows = []
        try:
            for i in range(jobs):
                start = time.perf_counter()
                assert main(["sweep", "--checkpoints-dir", str(folder), "--results-dir", str(root / f"in{i}" / "runs"),
                             *ARGS]) == 0
                in_process = time.perf_counter() - start
                runs, marks, stop = root / f"job{i}" / "runs", {}, threading.Event()
                runs.mkdir(parents=True)
                watcher = threading.Thread(target=_watch, args=(runs, marks, stop))
                watcher.start()
                submitted = time.perf_counter()
                assert main(["sweep", "--checkpoints-dir", str(folder), "--results-dir", str(runs), *ARGS,
                             "--executor", "slurm", "--cpus-per-task", "1"]) == 0
                ended = time.perf_counter()
                stop.set()
                watcher.join()
                rows.append((marks["start"] - submitted, marks["first_batch"] - marks["start"],
                             marks["record"] - marks["start"], ended - submitted, in_process))
        finally:
            cluster.stop()
    names = ("submit→start", "start→first batch", "start→record", "submit→sweep returns", "in-process sweep")
    print(f"{jobs} jobs, pgd-at-smallcnn, {' '.join(ARGS[:-1])}, 1 thread; median (min–max) seconds")
    for k, name in enumerate(names):
        values = [r[k] for r in rows]
        print(f"  {name:22s} {statistics.median(values):6.2f}  ({min(values):.2f}–{max(values):.2f})")
    overhead = [r[3] - r[4] for r in rows]
    print(f"  per-job overhead (submit→returns minus in-process): {statistics.median(overhead):.2f} s; "
          f"ratio {statistics.median(r[3] / r[4] for r in rows):.2f}×")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=5)
    main_(parser.parse_args().jobs)
