"""One sweep job: a checkpoint's unrecorded cells, run where the executor placed it.

Resume is the harness's own: progress is saved after every batch in the results folder's .state/,
so a job that is cancelled, timed out or preempted continues where it stopped when it runs again —
resubmitted by hand, or requeued by submitit (on timeout or preemption SLURM signals the job and
submitit calls `checkpoint`, which asks for the same job again). That works the same for every
executor and needs nothing from the job's memory."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.cluster import ledger
from bench.errors import first_line
from bench.evaluation import sweep
from bench.evaluation.config import RunConfig
from bench.evaluation.harness import evaluate
from bench.reporting.derived import rebuild


@dataclass(frozen=True)
class SweepJob:
    cfg: RunConfig
    force: bool
    folder: Path  # the sweep's ledger folder
    name: str  # this job's name in it
    ranks: int  # above 1: the checkpoint's points are sharded over this many torchrun ranks

    def __call__(self) -> str:
        state = ledger.state_path(self.folder, self.name)
        ledger.record_state(state, "running")
        try:
            _, record = sweep.run_one(self.cfg, self.force, _in_process if self.ranks <= 1 else self._torchrun)
        except Exception as exc:
            ledger.record_state(state, "failed", first_line(exc))
            self._rebuild_if_last()
            raise
        detail = "nothing to do" if record is None else str(record)
        ledger.record_state(state, "done", detail)
        self._rebuild_if_last()
        return detail

    def _rebuild_if_last(self) -> None:
        if ledger.claim_rebuild(self.folder):
            rebuild(self.cfg.results_dir, with_leaderboard=True)

    def _torchrun(self, todo: RunConfig) -> Path | None:
        """The cells under torchrun's launcher, one rank per GPU; rank 0 writes the record."""
        from torch.distributed.launcher.api import LaunchConfig, elastic_launch

        config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=self.ranks, run_id=uuid.uuid4().hex,
                              rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0,
                              start_method="spawn")
        return elastic_launch(config, _in_process)(todo).get(0)

    def checkpoint(self) -> object:
        """submitit's hook on timeout or preemption: requeue this same job (it resumes from .state/)."""
        import submitit

        return submitit.helpers.DelayedSubmission(self)


def _in_process(cfg: RunConfig) -> Path | None:
    """The cells in this process (under torchrun: this rank's share; rank 0 returns the record)."""
    return evaluate(cfg).record_path
