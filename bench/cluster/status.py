"""`bench sweep --status`: every cell of a sweep (checkpoint × attack) and where it stands."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.cluster import ledger
from bench.cluster.submit import views_of
from bench.evaluation import sweep
from bench.evaluation.config import RunConfig


@dataclass(frozen=True)
class Cell:
    label: str
    attack: str
    state: str  # done (recorded), queued, running, failed, or not submitted
    job_id: str = ""
    detail: str = ""
    log: str = ""


def cells(targets: Sequence[RunConfig]) -> list[Cell]:
    """Recorded cells are done whatever submitted them; the others take the state of the newest job
    submitted for them under the same conditions (or none)."""
    if not targets:
        return []
    entries = ledger.entries(targets[0].results_dir)
    views = views_of(entries)
    found = []
    for cfg, item in zip(targets, sweep.plan(list(targets), force=False), strict=True):
        conditions = sweep.conditions_key(cfg)
        found += [Cell(item.label, label, "done") for label in item.skipped]
        for attack in item.todo.attacks() if item.todo is not None else []:
            jobs = [v for e, v in zip(entries, views, strict=True) if e.submission.model_sha256 == item.sha256
                    and e.submission.conditions == conditions and attack.label in e.submission.cells]
            if not jobs:
                found.append(Cell(item.label, attack.label, "not submitted"))
                continue
            job = jobs[-1]  # entries are oldest first
            state, detail = job.state, job.detail
            if state == "done":  # its job ended well, yet no record has the cell: the record was removed
                state, detail = "failed", f"no record has it (its job wrote {job.detail})"
            found.append(Cell(item.label, attack.label, state, job.job_id, detail, job.log))
    return found
