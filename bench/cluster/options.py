"""What a sweep's jobs ask of the executor, in SLURM's terms, and how that maps to submitit."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from bench.errors import BenchError


class ExecutorKind(enum.Enum):
    LOCAL = "local"  # submitit's local executor: one process per job on this machine, all at once
    SLURM = "slurm"  # sbatch, one array task per job


# sbatch options these flags (or submitit itself) set: an extra line may not set them twice
MANAGED = frozenset({"partition", "time", "cpus-per-task", "gpus-per-node", "array", "output", "error",
                     "job-name", "nodes", "ntasks-per-node", "signal", "open-mode", "wckey", "gres"})
EXTRA_KEY = re.compile(r"[a-z][a-z0-9-]{0,40}")
EXTRA_VALUE = re.compile(r"[A-Za-z0-9_.,:=/@%+-]{1,200}")  # one sbatch word: no spaces, quotes or newlines


@dataclass(frozen=True)
class JobOptions:
    executor: ExecutorKind
    partition: str | None = None  # --partition (default: the cluster's default partition)
    timeout_min: int = 24 * 60  # --time; a job that reaches it is requeued and resumes
    cpus_per_task: int = 2  # --cpus-per-task
    array_parallelism: int = 256  # --array=0-N%P: at most P jobs of the sweep at once
    gpus_per_job: int = 0  # --gpus-per-node; above 1 the job runs its checkpoint under torchrun
    sbatch: tuple[tuple[str, str], ...] = ()  # extra #SBATCH --KEY=VALUE lines
    wait: bool = True  # False: submit and return (`bench sweep --status` follows the jobs)

    def __post_init__(self) -> None:
        for name in ("timeout_min", "cpus_per_task", "array_parallelism"):
            if getattr(self, name) < 1:
                raise BenchError(f"{name} must be at least 1")
        if self.gpus_per_job < 0:
            raise BenchError("gpus_per_job must be at least 0")
        if self.partition is not None and not EXTRA_VALUE.fullmatch(self.partition):
            raise BenchError(f"partition {self.partition!r}: letters, digits and _.,:=/@%+- only")
        for key, value in self.sbatch:
            check_extra(key, value)

    def submitit_parameters(self) -> dict[str, Any]:
        """AutoExecutor.update_parameters keywords (the slurm_ ones are ignored by the local executor)."""
        params: dict[str, Any] = {"timeout_min": self.timeout_min, "cpus_per_task": self.cpus_per_task,
                                  "gpus_per_node": self.gpus_per_job, "tasks_per_node": 1, "nodes": 1,
                                  "slurm_array_parallelism": self.array_parallelism,
                                  "slurm_additional_parameters": dict(self.sbatch)}
        if self.partition is not None:
            params["slurm_partition"] = self.partition
        return params


def check_extra(key: str, value: str) -> None:
    if not EXTRA_KEY.fullmatch(key):
        raise BenchError(f"--sbatch {key}=...: an sbatch option name is lower-case letters, digits and -")
    if key in MANAGED:
        raise BenchError(f"--sbatch {key}=...: set by the sweep's own flags or by submitit; use those")
    if not EXTRA_VALUE.fullmatch(value):
        raise BenchError(f"--sbatch {key}={value!r}: one word of letters, digits and _.,:=/@%+- (no spaces, "
                         "quotes or newlines)")


def parse_extra(text: str) -> tuple[str, str]:
    """`KEY=VALUE` (the CLI's --sbatch) → (key, value), checked."""
    key, sep, value = text.partition("=")
    if not sep:
        raise BenchError(f"--sbatch {text!r}: expected KEY=VALUE, e.g. --sbatch mem=16G")
    key = key.removeprefix("--")
    check_extra(key, value)
    return key, value
