"""Submitting a sweep's jobs and following them to the end."""

from __future__ import annotations

import dataclasses
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.cluster import ledger
from bench.cluster.job import SweepJob
from bench.cluster.options import ExecutorKind, JobOptions
from bench.errors import BenchError, first_line
from bench.evaluation import sweep
from bench.evaluation.config import RunConfig
from bench.provenance import now_iso
from bench.reporting.derived import Derived, rebuild

LOST = "ended without finishing (cancelled, timed out or killed): submit the sweep again to resume it"


@dataclass(frozen=True)
class JobView:
    """Where one job stands: queued, running, done or failed (with its log)."""

    label: str
    cells: tuple[str, ...]
    job_id: str
    state: str
    detail: str
    log: str


@dataclass(frozen=True)
class Submitted:
    folder: Path | None  # the sweep's ledger folder (submitit's files too); None: nothing was submitted
    nothing_to_do: tuple[str, ...]  # labels whose cells are all recorded
    jobs: tuple[JobView, ...]  # as submitted, or as they ended when waited for
    derived: Derived | None  # rebuilt by the submitter when it waited and no job was last to end


def submit(targets: Sequence[RunConfig], force: bool, options: JobOptions,
           on_job: Callable[[JobView], None] = lambda view: None, poll_s: float = 0.5) -> Submitted:
    import submitit

    targets = [_absolute(cfg) for cfg in targets]
    items = sweep.plan(list(targets), force)
    nothing = tuple(item.label for item in items if item.todo is None)
    todo = [(cfg, item) for cfg, item in zip(targets, items, strict=True) if item.todo is not None]
    if not todo:
        return Submitted(None, nothing, (), rebuild(targets[0].results_dir) if targets else None)
    folder = ledger.new_sweep(targets[0].results_dir)
    executor = submitit.AutoExecutor(folder=folder, cluster=options.executor.value)
    executor.update_parameters(name="bench-sweep", **options.submitit_parameters())
    names = [ledger.job_name(item.label, i) for i, (_, item) in enumerate(todo)]
    calls = [SweepJob(cfg, force, folder, name, options.gpus_per_job) for (cfg, _), name in zip(todo, names, strict=True)]
    try:
        with executor.batch():
            handles = [executor.submit(call) for call in calls]
    except Exception as exc:  # submitit's FailedJobError, sbatch's messages
        raise BenchError(f"the {options.executor.value} executor refused the sweep's jobs: {first_line(exc)}") from None
    for (cfg, item), name, handle in zip(todo, names, handles, strict=True):
        assert item.todo is not None
        ledger.record_submission(folder, name, ledger.Submission(
            item.label, item.sha256, sweep.conditions_key(cfg), tuple(a.label for a in item.todo.attacks()),
            options.executor.value, str(handle.job_id), str(handle.paths.stdout), now_iso()))
    ledger.seal(folder)
    views = views_of(ledger.sweep_entries(folder))
    if not options.wait:
        return Submitted(folder, nothing, tuple(views), None)
    ended: dict[str, JobView] = {}
    while len(ended) < len(views):
        for view in views_of(ledger.sweep_entries(folder)):
            if view.state in ("done", "failed") and view.job_id not in ended:
                ended[view.job_id] = view
                on_job(view)
        time.sleep(poll_s)
    derived = rebuild(targets[0].results_dir) if ledger.claim_rebuild(folder) or any(
        v.detail == LOST for v in ended.values()) else None
    return Submitted(folder, nothing, tuple(ended.values()), derived)


def _absolute(cfg: RunConfig) -> RunConfig:
    """Jobs may start in another folder (sbatch's working directory): every path made absolute."""
    return dataclasses.replace(cfg, results_dir=cfg.results_dir.resolve(),
                               data_dir=cfg.data_dir.resolve() if cfg.data_dir else None,
                               checkpoint=cfg.checkpoint.resolve() if cfg.checkpoint else None)


def views_of(entries: Sequence[ledger.Entry]) -> list[JobView]:
    alive = _alive({e.submission.executor for e in entries}, [e.submission.job_id for e in entries])
    views = []
    for e in entries:
        s = e.submission
        state, detail = (e.state.state, e.state.detail) if e.state is not None else ("queued", "")
        live = alive.get(s.job_id)
        if state in ("queued", "running") and live is None:
            state, detail = "failed", LOST
        elif state == "queued" and live == "running":
            state = "running"
        views.append(JobView(s.label, s.cells, s.job_id, state, detail, s.log))
    return views


def _alive(executors: set[str], job_ids: list[str]) -> dict[str, str]:
    """job id → queued or running, for the jobs that still exist (SLURM's squeue; a local job's pid)."""
    alive: dict[str, str] = {}
    if ExecutorKind.SLURM.value in executors:
        try:
            out = subprocess.run(["squeue", "--noheader", "--array", "--format=%i %T"], capture_output=True,
                                 text=True, timeout=60, check=True).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise BenchError(f"cannot ask SLURM where the jobs stand (squeue): {first_line(exc)}") from None
        for line in out.splitlines():
            job, _, state = line.partition(" ")
            alive[job] = "queued" if state in ("PENDING", "CONFIGURING", "REQUEUED") else "running"
    if ExecutorKind.LOCAL.value in executors:
        for job in job_ids:
            if job.isdigit() and _pid_alive(int(job)):
                alive[job] = "running"
    return alive


def _pid_alive(pid: int) -> bool:
    """A live process, not a zombie (a local job that ended but was not reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
