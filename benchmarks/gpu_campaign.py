"""The GPU campaign: one command that proves the CUDA paths and evaluates on the full test set.

Jobs run in priority order under one global deadline, several at a time where a small model
leaves the GPU idle; each job is a child process with its own log and time limit, and writes its
outputs as it finishes, so a deadline loses only unfinished jobs. After every finished job the
results are packed again into at most four files under --out (what a lent GPU machine can send
back), and `manifest.json` says what ran, passed, failed or was skipped and why:

    manifest.json              jobs, timings, the machine, the torch version
    campaign.log               one line per event
    campaign-results.tar.gz    run records, perf-gpu.json, the CUDA test reports, the manifest, logs
    campaign-checkpoints.tar.gz  full-budget checkpoints with sidecars (when any were trained)

`bench campaign import campaign-results.tar.gz [campaign-checkpoints.tar.gz]` validates and
merges them. Jobs, in priority order:
  1. perf         GPU performance rows (alone on the machine, so the timings are clean)
  2. cuda-tests   `pytest -m cuda` (CUDA against CPU, official aa, precisions, OOM, training, NCCL)
  3. eval         every committed checkpoint on the full test set: fgsm,pgd,cw; then aa; then the
                  defense's adaptive attacks where it registers any
  4. train, eval-trained   the full training budget for every defense, then the same evaluation

--dry-run runs all of it on CPU at toy sizes (a few points, few steps, a few defenses) in minutes.

Usage: python benchmarks/gpu_campaign.py --out DIR [--deadline-s 540] [--workers 8] [--dry-run]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CARRIED = REPO / ".campaign"  # what travels beside the tree: site/ (pyautoattack), data/ (Fashion-MNIST)
DEFENSES = ("standard", "pgd-at", "trades", "mart", "ancra", "ancra-pgd", "ancra-mart", "afd", "claf", "ascl", "spat")
DRY_DEFENSES = ("standard", "pgd-at", "ancra")
KEEP_GOING_S = 5  # a job needs at least this much time left to be started


@dataclass
class Job:
    name: str
    group: str
    argv: list[str]
    limit_s: float  # its own time limit (the deadline may cut it shorter)
    env: dict[str, str] = field(default_factory=dict)
    exclusive: bool = False  # runs alone: nothing else starts while it runs, and it waits for the rest
    needs: tuple[str, ...] = ()  # jobs that must have passed first
    status: str = "pending"  # pending, running, passed, failed, timed-out, skipped
    reason: str = ""
    seconds: float = 0.0
    started: float = 0.0
    process: subprocess.Popen[bytes] | None = None

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "group": self.group, "status": self.status, "reason": self.reason,
                "seconds": round(self.seconds, 1), "command": " ".join(self.argv)}


@dataclass(frozen=True)
class Plan:
    dry_run: bool
    out: Path  # only the manifest, the log and the archives: what a lent machine sends back
    work: Path  # records, checkpoints, logs while they are made
    python: str
    workers: int
    deadline_s: float

    @property
    def defenses(self) -> tuple[str, ...]:
        return DRY_DEFENSES if self.dry_run else DEFENSES

    @property
    def points(self) -> list[str]:
        """All 10 000 test points; the dry run: 6 (every AutoAttack stage still has work)."""
        return ["--points", "6"] if self.dry_run else []

    @property
    def eval_speed(self) -> list[str]:
        """The leaderboard's arithmetic on the GPU: TF32 tensor cores for the attacks (what PyTorch
        and RobustBench evaluations use by default on such GPUs), every success verified in IEEE fp32."""
        return [] if self.dry_run else ["--precision", "tf32", "--batch-size", "10000"]


def adaptive_defenses() -> set[str]:
    sys.path.insert(0, str(REPO))
    from defenses import DEFENSES as REGISTRY

    return {name for name, d in REGISTRY.items() if d.adaptive_attacks}


def bench(plan: Plan, *args: str) -> list[str]:
    return [plan.python, "-m", "bench", *args]


def jobs(plan: Plan) -> list[Job]:
    runs = str(plan.work / "runs")
    quiet = ["--quiet"]
    out: list[Job] = []
    perf = [plan.python, "benchmarks/gpu_perf.py", "--out", str(plan.work / "perf-gpu.json")]
    out.append(Job("perf", "perf", perf + (["--quick", "--no-compile"] if plan.dry_run else ["--n", "200"]),
                   limit_s=120, exclusive=True))
    tests = [plan.python, "-m", "pytest", "-m", "cuda", "tests", "-q", "-p", "no:cacheprovider",
             "--junitxml", str(plan.work / "cuda-tests.xml"), "-o", "addopts="]
    test_env = {"BENCH_CUDA_REPORT": str(plan.work / "cuda-report.jsonl"), "OMP_NUM_THREADS": "4"}
    if plan.dry_run:  # the CPU stands in for the GPU, on a handful of points, the cheap cases only
        tests += ["-k", "fgsm or pgd-linf or harness_equals or bf16-channels or every_defense and pgd-at or torchrun"]
        test_env |= {"BENCH_GPU_TEST_DEVICE": "cpu", "BENCH_GPU_TEST_POINTS": "12", "OMP_NUM_THREADS": "1"}
    elif _has_xdist():
        tests += ["-n", "4"]
    out.append(Job("cuda-tests", "cuda-tests", tests, limit_s=420, env=test_env))
    adaptive = adaptive_defenses()
    for attacks, tag in (("fgsm,pgd,cw", "cheap"), ("aa", "aa"), ("adaptive", "adaptive")):
        for d in plan.defenses:
            if tag == "adaptive" and d not in adaptive:
                continue
            out.append(Job(f"eval-{tag}-{d}", f"eval-{tag}",
                           bench(plan, "run", "--defense", d, "--attack", attacks, *plan.points, *plan.eval_speed,
                                 "--results-dir", runs, *quiet), limit_s=600))
    budget = ["--budget", "full"]
    toy = ["--epochs", "1", "--train-points", "256", "--batch-size", "64", "--attack-steps", "2"] if plan.dry_run else []
    ckpt = plan.work / "checkpoints"
    for d in plan.defenses:
        init = ["--init", str(ckpt / "standard.pt")] if d == "afd" else []
        out.append(Job(f"train-{d}", "train", bench(plan, "train", "--defense", d, *budget, *toy, *init,
                                                    "--out", str(ckpt / f"{d}.pt"), "--overwrite", *quiet),
                       limit_s=600, needs=("train-standard",) if d == "afd" else ()))
    for d in plan.defenses:
        out.append(Job(f"eval-trained-{d}", "eval-trained",
                       bench(plan, "run", "--checkpoint", str(ckpt / f"{d}.pt"), "--attack", "fgsm,pgd,cw,aa",
                             *plan.points, *plan.eval_speed, "--results-dir", runs, *quiet),
                       limit_s=600, needs=(f"train-{d}",)))
    return out


def _has_xdist() -> bool:
    try:
        import xdist  # noqa: F401
    except ImportError:
        return False
    return True


class Campaign:
    def __init__(self, plan: Plan, todo: list[Job], environment: dict[str, Any]) -> None:
        self.plan, self.jobs, self.environment = plan, todo, environment
        self.start = time.monotonic()
        self.log_lines: list[str] = []

    def left(self) -> float:
        return self.plan.deadline_s - (time.monotonic() - self.start)

    def log(self, text: str) -> None:
        line = f"[{time.monotonic() - self.start:6.1f}s] {text}"
        print(line, flush=True)
        self.log_lines.append(line)
        (self.plan.out / "campaign.log").write_text("\n".join(self.log_lines) + "\n")

    def launch(self, job: Job) -> None:
        logs = self.plan.work / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **job.env}
        # CPU threads per job: the cores shared by the workers (oversubscribed cores slow every job)
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // self.plan.workers)))
        handle = open(logs / f"{job.name}.log", "wb")  # noqa: SIM115 (closed when the child ends)
        job.process = subprocess.Popen(job.argv, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        job.status, job.started = "running", time.monotonic()
        self.log(f"start {job.name}: {' '.join(job.argv)}")

    def stop(self, job: Job, why: str) -> None:
        assert job.process is not None
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(job.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                job.process.wait(timeout=2)
                break
            except subprocess.TimeoutExpired:
                continue
        job.status, job.reason = "timed-out", why

    def finish(self, job: Job) -> None:
        job.seconds = time.monotonic() - job.started
        if job.status == "running":
            code = job.process.returncode if job.process else None
            job.status = "passed" if code == 0 else "failed"
            job.reason = "" if code == 0 else f"exit code {code}: see work/logs/{job.name}.log"
        self.log(f"{job.status} {job.name} in {job.seconds:.1f}s {job.reason}".rstrip())
        self.save()

    def blocked(self, job: Job) -> str | None:
        by_name = {j.name: j for j in self.jobs}
        for need in job.needs:
            status = by_name[need].status if need in by_name else "absent"
            if status in ("failed", "timed-out", "skipped", "absent"):
                return f"needs {need}, which {status}"
        return None

    def ready(self, job: Job) -> bool:
        by_name = {j.name: j for j in self.jobs}
        return all(by_name[n].status == "passed" for n in job.needs if n in by_name)

    def run(self) -> None:
        pending = list(self.jobs)
        running: list[Job] = []
        while pending or running:
            self._reap(running)
            self._skip_blocked(pending)
            if self.left() < KEEP_GOING_S and pending:
                for job in pending:
                    job.status, job.reason = "skipped", "deadline: not started"
                self.log(f"deadline: {len(pending)} jobs not started")
                pending.clear()
            self._start_ready(pending, running)
            time.sleep(0.2)
        self.save()

    def _reap(self, running: list[Job]) -> None:
        """Stop jobs past their own limit or the deadline; record the ones that ended."""
        for job in list(running):
            assert job.process is not None
            limit = min(job.limit_s, self.plan.deadline_s - (job.started - self.start))
            if job.process.poll() is None and time.monotonic() - job.started > limit:
                self.stop(job, "deadline" if self.left() <= 0 else f"over its {job.limit_s:.0f} s limit")
            if job.process.poll() is not None:
                running.remove(job)
                self.finish(job)

    def _skip_blocked(self, pending: list[Job]) -> None:
        for job in list(pending):
            why = self.blocked(job)
            if why:
                job.status, job.reason = "skipped", why
                pending.remove(job)
                self.log(f"skip {job.name}: {why}")

    def _start_ready(self, pending: list[Job], running: list[Job]) -> None:
        """Start pending jobs in priority order while workers are free; an exclusive job waits for
        an idle machine and holds it alone."""
        for job in list(pending):
            if any(j.exclusive for j in running) or len(running) >= self.plan.workers:
                return
            if job.exclusive and running:
                return
            if not self.ready(job):
                continue
            pending.remove(job)
            self.launch(job)
            running.append(job)

    def save(self) -> None:
        manifest = {"environment": self.environment, "deadline_s": self.plan.deadline_s,
                    "workers": self.plan.workers, "dry_run": self.plan.dry_run,
                    "elapsed_s": round(time.monotonic() - self.start, 1),
                    "jobs": [j.summary() for j in self.jobs]}
        for folder in (self.plan.out, self.plan.work):
            (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        pack(self.plan)


def pack(plan: Plan) -> None:
    """Records, perf and test reports, logs → campaign-results.tar.gz; trained checkpoints →
    campaign-checkpoints.tar.gz (written to a temporary name first: a kill leaves the last good one)."""
    parts = {"campaign-results.tar.gz": [p for p in ("runs", "perf-gpu.json", "cuda-report.jsonl", "cuda-tests.xml",
                                                      "manifest.json", "logs") if (plan.work / p).exists()],
             "campaign-checkpoints.tar.gz": ["checkpoints"] if any((plan.work / "checkpoints").glob("*.pt")) else []}
    for name, members in parts.items():
        if not members:
            continue
        tmp = plan.out / f".{name}.tmp"
        with tarfile.open(tmp, "w:gz") as tar:
            for member in members:
                tar.add(plan.work / member, arcname=member, filter=_no_state)
        tmp.replace(plan.out / name)


def _no_state(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Records, sidecars and checkpoints only: no resume states, locks or partial files."""
    name = Path(info.name)
    if any(part.startswith(".") for part in name.parts) or name.suffix in (".tmp", ".lock"):
        return None
    return None if name.name.endswith(".train-state.pt") else info


def prepare_environment(plan: Plan) -> dict[str, Any]:
    """Carried packages and data on the path for every child; what the machine is."""
    paths = [str(REPO)]
    if (CARRIED / "site").is_dir():
        paths.append(str(CARRIED / "site"))
    os.environ["PYTHONPATH"] = os.pathsep.join(paths + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    if (CARRIED / "data").is_dir() and "BENCH_DATA_DIR" not in os.environ:
        os.environ["BENCH_DATA_DIR"] = str(CARRIED / "data")
    if plan.dry_run:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # CPU only, even on a GPU machine
    probe = ("import json, platform, torch; print(json.dumps({'python': platform.python_version(), "
             "'torch': torch.__version__, 'cuda': torch.version.cuda, 'cudnn': torch.backends.cudnn.version(), "
             "'gpu': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "
             "'gpu_memory_gib': round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) "
             "if torch.cuda.is_available() else None}))")
    found = subprocess.run([plan.python, "-c", probe], capture_output=True, text=True, env=os.environ, check=True)
    facts: dict[str, Any] = json.loads(found.stdout)
    missing = subprocess.run([plan.python, "-c", "import pyautoattack, pandas, tabulate, tqdm"], capture_output=True,
                             text=True, env=os.environ)
    facts.update(host=platform.node(), cpu_cores=os.cpu_count(), bench_data_dir=os.environ.get("BENCH_DATA_DIR"),
                 imports_ok=missing.returncode == 0, import_error=missing.stderr.strip().splitlines()[-1:] or None,
                 git_sha=_git_sha())
    return facts


def _git_sha() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("BENCH_GIT_SHA")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "campaign-out")),
                        help="where the manifest and archives go (default: $OUT, else ./campaign-out)")
    parser.add_argument("--work", type=Path, help="working folder for records, checkpoints and logs (default: a "
                        "new temporary folder; must be empty)")
    parser.add_argument("--deadline-s", type=float, default=540, help="global deadline in seconds (default 540: a "
                        "10-minute command with time to pack)")
    parser.add_argument("--workers", type=int, default=8, help="jobs at a time (default 8)")
    parser.add_argument("--dry-run", action="store_true", help="CPU, toy sizes: rehearse every job in minutes")
    parser.add_argument("--only", help="comma-separated job groups to run (perf, cuda-tests, eval-cheap, eval-aa, "
                        "eval-adaptive, train, eval-trained)")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the jobs")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.deadline_s <= 0:
        parser.error("--workers must be at least 1 and --deadline-s positive")
    work = (args.work or Path(tempfile.mkdtemp(prefix="campaign-work-"))).resolve()
    if work.exists() and any(work.iterdir()):
        parser.error(f"{work} is not empty: a campaign never overwrites results (choose another --work)")
    out = args.out.resolve()
    if out.exists() and any(out.glob("campaign-*.tar.gz")):
        parser.error(f"{out} holds an earlier campaign's archives: a campaign never overwrites results")
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    plan = Plan(args.dry_run, out, work, args.python, args.workers, args.deadline_s)
    environment = prepare_environment(plan)
    todo = jobs(plan)
    if args.only:
        groups = set(args.only.split(","))
        unknown = groups - {j.group for j in todo}
        if unknown:
            parser.error(f"unknown job group(s) {', '.join(sorted(unknown))}")
        todo = [dataclasses.replace(j, needs=tuple(n for n in j.needs if any(k.name == n for k in todo if k.group in groups)))
                for j in todo if j.group in groups]
    campaign = Campaign(plan, todo, environment)
    campaign.log(f"environment: {json.dumps(environment)}")
    if not environment["imports_ok"]:
        campaign.log(f"missing packages: {environment['import_error']} (carry them under .campaign/site)")
    campaign.run()
    counts: dict[str, int] = {}
    for j in todo:
        counts[j.status] = counts.get(j.status, 0) + 1
    campaign.log("done: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0 if counts.get("failed", 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
