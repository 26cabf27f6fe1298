"""`bench sweep`: an attack set over every checkpoint, incrementally."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.attacks.specs import format_attacks
from bench.cli.arguments import dataset_help, non_negative_int, positive_int, seed_value
from bench.cli.model_options import MODEL_HELP, add_model_qualifiers, model_spec
from bench.cluster.options import ExecutorKind, JobOptions, parse_extra
from bench.data import DEFAULT_DATASET
from bench.errors import BenchError
from bench.evaluation.config import STANDARD_ATTACKS
from bench.loading.model import Precision

SWEEP_EXAMPLES = """examples:
  bench sweep                                          # fgsm,pgd,cw,aa over every committed fashion-mnist checkpoint
  bench sweep --attack pgd,aa --n 1000                 # what is already recorded is skipped
  bench sweep --checkpoints-dir runs/ --attack pgd     # every checkpoint (with sidecar) in a folder
  bench sweep --model mypkg.nets:make_net --weights w.pt --attack fgsm,pgd,aa-fast   # a user model
  bench sweep --attack fgsm,pgd --eps-sweep 0.05,0.1,0.2,0.3,0.5 --n 500   # ε curves for the plots
  bench sweep --force                                  # rerun even what is recorded
  bench sweep --executor slurm --slurm-partition gpu --gpus-per-job 1 --results-dir /shared/runs
                                                       # one SLURM job per checkpoint (docs/cluster.md)
  bench sweep --executor slurm --status --results-dir /shared/runs   # where each cell stands
An interrupted sweep continues where it stopped when started again with the same options; so does a
cancelled, timed-out or failed job's checkpoint when the sweep is submitted again.
"""


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run an attack set over every checkpoint, skipping what is recorded",
                       epilog=SWEEP_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default=DEFAULT_DATASET, help=dataset_help())
    models = p.add_mutually_exclusive_group()
    models.add_argument("--checkpoints-dir", type=Path, help="every *.pt with a sidecar here, instead of the "
                        "registered defenses' committed checkpoints")
    models.add_argument("--model", help=f"instead: one user model, {MODEL_HELP}")
    add_model_qualifiers(p)
    p.add_argument("--attack", default=format_attacks(STANDARD_ATTACKS))
    eps = p.add_mutually_exclusive_group()
    eps.add_argument("--eps", help="perturbation budget (default: the dataset's)")
    eps.add_argument("--eps-sweep", metavar="EPS,EPS,...", help="every checkpoint at each ε (records marked "
                     "eps-sweep, for the ε-curve plots and checks)")
    p.add_argument("--norm")
    p.add_argument("--n", type=positive_int)
    p.add_argument("--sample-seed", type=seed_value)
    p.add_argument("--seed", type=seed_value, default=0)
    p.add_argument("--batch-size", type=positive_int, default=500)
    p.add_argument("--device", default="auto")
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--results-dir", type=Path, default=Path("results/runs"))
    p.add_argument("--precision", choices=[p.value for p in Precision], default="fp32",
                   help="attack arithmetic, as `bench run --precision` (every success verified in IEEE fp32, "
                        "but bf16 attacks miss points fp32 breaks); a recorded cell is skipped whatever "
                        "arithmetic recorded it")
    p.add_argument("--force", action="store_true", help="rerun attacks that are already recorded")
    p.add_argument("--quiet", action="store_true")
    jobs = p.add_argument_group("jobs (each checkpoint with cells left becomes one job; sbatch option in brackets)")
    jobs.add_argument("--executor", choices=[k.value for k in ExecutorKind],
                      help="local: one process per job on this machine (submitit); slurm: one sbatch array task "
                      "per job. Default: every checkpoint in this process")
    jobs.add_argument("--slurm-partition", help="[--partition] default: the cluster's default partition")
    jobs.add_argument("--timeout-min", type=positive_int, default=JobOptions.timeout_min,
                      help="[--time] a job that reaches it is requeued and resumes from its saved progress "
                      "(default: %(default)s)")
    jobs.add_argument("--cpus-per-task", type=positive_int, default=JobOptions.cpus_per_task,
                      help="[--cpus-per-task] (default: %(default)s)")
    jobs.add_argument("--array-parallelism", type=positive_int, default=JobOptions.array_parallelism,
                      help="[--array=0-N%%P] at most P of the sweep's jobs at once (default: %(default)s)")
    jobs.add_argument("--gpus-per-job", type=non_negative_int, default=0,
                      help="[--gpus-per-node] above 1, the job shards its points over that many torchrun ranks")
    jobs.add_argument("--sbatch", action="append", default=[], metavar="KEY=VALUE",
                      help="an extra #SBATCH --KEY=VALUE line, e.g. --sbatch mem=16G --sbatch constraint=a100")
    jobs.add_argument("--no-wait", action="store_true", help="submit and return; --status follows the jobs")
    jobs.add_argument("--status", action="store_true",
                      help="run nothing: each cell of this sweep (same options) done, queued, running, failed "
                      "(with its job's log) or not submitted")
    p.set_defaults(func=_cmd_sweep)


def _job_options(args: argparse.Namespace) -> JobOptions | None:
    given = [flag for flag, value, default in (
        ("--slurm-partition", args.slurm_partition, None), ("--timeout-min", args.timeout_min, JobOptions.timeout_min),
        ("--cpus-per-task", args.cpus_per_task, JobOptions.cpus_per_task),
        ("--array-parallelism", args.array_parallelism, JobOptions.array_parallelism),
        ("--gpus-per-job", args.gpus_per_job, 0), ("--sbatch", args.sbatch, []), ("--no-wait", args.no_wait, False))
        if value != default]
    if args.executor is None:
        if given:
            raise BenchError(f"{given[0]} is an option of the jobs: add --executor local or --executor slurm")
        return None
    if args.executor == ExecutorKind.LOCAL.value and (args.slurm_partition or args.sbatch):
        raise BenchError("--slurm-partition and --sbatch are SLURM's: the local executor has neither")
    return JobOptions(ExecutorKind(args.executor), args.slurm_partition, args.timeout_min, args.cpus_per_task,
                      args.array_parallelism, args.gpus_per_job, tuple(parse_extra(e) for e in args.sbatch),
                      wait=not args.no_wait)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from bench.api import SweepOutcome, sweep_in_process, sweep_jobs, sweep_targets
    from bench.cluster.status import cells
    from bench.cluster.submit import JobView
    from bench.evaluation.sweep import checkpoints_in
    from bench.reporting.run_summary import format_summary
    from bench.threat import parse_eps_list

    def report(outcome: SweepOutcome) -> None:
        skipped = f" (already recorded: {', '.join(outcome.skipped)})" if outcome.skipped else ""
        if outcome.run is None:
            print(f"{outcome.label}: nothing to do{skipped}")
        else:
            print(f"{outcome.label}{skipped}:\n{format_summary(outcome.run.record, outcome.run.record_path)}\n")

    def report_job(view: JobView) -> None:
        print(f"{view.label} [{','.join(view.cells)}] job {view.job_id}: {view.state}"
              + (f": {view.detail}" if view.detail else "") + (f" (log: {view.log})" if view.state == "failed" else ""))

    jobs = _job_options(args)
    if args.status and args.force:
        raise BenchError("--status runs nothing: drop --force")
    targets = sweep_targets([], checkpoints_in(args.checkpoints_dir) if args.checkpoints_dir else [], model_spec(args),
                            dataset=args.dataset, attacks=args.attack, eps=args.eps,
                            eps_sweep=None if args.eps_sweep is None else parse_eps_list(args.eps_sweep),
                            norm=args.norm, n=args.n, sample_seed=args.sample_seed, seed=args.seed,
                            batch_size=args.batch_size, device=args.device, data_dir=args.data_dir,
                            results_dir=args.results_dir, sha256=args.sha256, precision=args.precision,
                            quiet=args.quiet)
    if args.status:
        for cell in cells(targets):
            print(f"{cell.label} {cell.attack}: {cell.state}" + (f" (job {cell.job_id})" if cell.job_id else "")
                  + (f": {cell.detail}" if cell.detail and cell.state == "failed" else "")
                  + (f" log: {cell.log}" if cell.state == "failed" else ""))
        return 0
    failed = False
    if jobs is None:
        derived = sweep_in_process(targets, args.force, report).derived
    else:
        submitted = sweep_jobs(targets, jobs, args.force, report_job)
        for label in submitted.nothing_to_do:
            print(f"{label}: nothing to do (every cell is recorded)")
        if not jobs.wait:
            for view in submitted.jobs:
                print(f"{view.label} [{','.join(view.cells)}]: submitted as job {view.job_id} (log: {view.log})")
            print("follow them with the same options and --status; the last job rebuilds the derived files")
            return 0
        failed = any(v.state == "failed" for v in submitted.jobs)
        if submitted.derived is None:
            print("the last job rebuilt the derived files")
            return 1 if failed else 0
        derived = submitted.derived
    assert derived is not None
    print(f"rebuilt {derived.table} and {derived.leaderboard} from {derived.records} records")
    return 1 if failed else 0
