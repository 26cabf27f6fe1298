"""A sweep's ledger: per job, one file the submitter writes (what was asked, which job) and one the
job writes (running, done or failed), under <results>/.sweeps/<sweep id>/. One writer per file, so
no update races; `bench sweep --status` reads both without the cluster's accounting database."""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.files import atomic_write, read_json_object
from bench.provenance import now_iso

JOB_STATES = ("running", "done", "failed")  # what a job writes about itself


@dataclass(frozen=True)
class Submission:
    """Written once by the submitter, after sbatch (or the local executor) accepted the job."""

    label: str
    model_sha256: str
    conditions: str  # the data points' digest, threat and seed: which records count for these cells
    cells: tuple[str, ...]  # attack labels the job runs
    executor: str
    job_id: str
    log: str  # the job's output (stdout and stderr)
    submitted: str


@dataclass(frozen=True)
class JobState:
    """Written by the job: when it starts, and once more when it ends (unless it is killed)."""

    state: str  # one of JOB_STATES
    detail: str = ""  # done: the record file (or "nothing to do"); failed: the error's first line
    at: str = ""


def _read(path: Path, shape: type[Any]) -> Any:
    """One ledger file, admitted only with exactly the fields `shape` writes, each of the written type."""
    raw = read_json_object(path, "sweep ledger entry", BenchError)
    names = {f.name for f in fields(shape)}
    if set(raw) != names:
        raise BenchError(f"{path}: not a sweep ledger entry (fields {sorted(set(raw) ^ names)} differ)")
    for key, value in raw.items():
        ok = (isinstance(value, list) and all(isinstance(v, str) for v in value)) if key == "cells" \
            else isinstance(value, str)
        if not ok:
            raise BenchError(f"{path}: field {key!r} of the sweep ledger entry has the wrong type")
    if "cells" in raw:
        raw["cells"] = tuple(raw["cells"])
    entry = shape(**raw)
    if isinstance(entry, JobState) and entry.state not in JOB_STATES:
        raise BenchError(f"{path}: unknown job state {entry.state!r}")
    return entry


def _write(path: Path, entry: Submission | JobState) -> None:
    atomic_write(path, json.dumps(asdict(entry), indent=1).encode())


def new_sweep(results_dir: Path) -> Path:
    folder = results_dir / ".sweeps" / f"{now_iso().replace(':', '')}-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    return folder


def job_name(label: str, index: int) -> str:
    safe = re.sub(r"[^\w.-]", "_", label)[:100]
    return f"{index:03d}-{safe}"


def record_submission(folder: Path, name: str, entry: Submission) -> None:
    _write(folder / f"{name}.submitted.json", entry)


def record_state(path: Path, state: str, detail: str = "") -> None:
    _write(path, JobState(state, detail, now_iso()))


def state_path(folder: Path, name: str) -> Path:
    return folder / f"{name}.state.json"


@dataclass(frozen=True)
class Entry:
    sweep: str
    submission: Submission
    state: JobState | None  # None: the job has not started


def entries(results_dir: Path) -> list[Entry]:
    """Every job ever submitted for this results folder, oldest sweep first."""
    root = results_dir / ".sweeps"
    found: list[Entry] = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        for path in sorted(folder.glob("*.submitted.json")):
            name = path.name.removesuffix(".submitted.json")
            state = state_path(folder, name)
            found.append(Entry(folder.name, _read(path, Submission),
                               _read(state, JobState) if state.exists() else None))
    return found


def sweep_entries(folder: Path) -> list[Entry]:
    return [e for e in entries(folder.parent.parent) if e.sweep == folder.name]


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def seal(folder: Path) -> None:
    """Written by the submitter once every job's submission is: before it, no job can be the last."""
    (folder / "sealed").touch()


def claim_rebuild(folder: Path) -> bool:
    """True exactly once per sealed sweep, to the first (job or submitter) that finds all its jobs ended."""
    with locked(folder):
        ended = all(e.state is not None and e.state.state != "running" for e in sweep_entries(folder))
        marker = folder / "rebuilt"
        if not ended or marker.exists() or not (folder / "sealed").exists():
            return False
        marker.touch()
        return True
