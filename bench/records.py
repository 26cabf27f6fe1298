"""Run records (the source of truth) and the resume state of unfinished runs.

A record is one JSON file per run under results/runs/, created with an exclusive link so that
it can never overwrite another record, and written completely before it appears.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.files import atomic_write
from bench.provenance import now_iso
from bench.schema import SCHEMA_VERSION


def write_record(results_dir: Path, record: dict[str, Any], stem: str) -> Path:
    record = {"schema_version": SCHEMA_VERSION, **record}
    text = json.dumps(record, indent=1, sort_keys=True) + "\n"
    for _ in range(5):
        path = results_dir / f"{now_iso().replace(':', '')}-{stem}-{uuid.uuid4().hex[:8]}.json"
        try:
            atomic_write(path, text.encode(), exclusive=True)
            return path
        except FileExistsError:
            continue
    raise BenchError(f"could not create a new record file in {results_dir}")


def state_key_hash(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


class ResumeState:
    """Progress of an unfinished run, saved after every batch, keyed by what decides the outcome
    (model sha256, data-index hash, threat model, attack protocols and configs, seed, batch size)."""

    def __init__(self, directory: Path, model_label: str, key: dict[str, Any], write: bool = True) -> None:
        self.directory = directory
        self.write = write  # False on torchrun ranks other than 0: they read the state, never write it
        self.model_label = model_label
        self.key = key
        self.path = directory / f"{model_label}-{state_key_hash(key)[:16]}.json"
        self.progress: dict[str, Any] = {}
        self.resumed = False

    def start(self, resume: bool | None, before_write: Callable[[], None] = lambda: None) -> None:
        """resume: True continues (and requires) saved progress, False refuses to overwrite it,
        None continues it when present (sweeps, which are resumed by running them again).
        `before_write` runs after the decision and before the first save: torchrun ranks wait
        there, so that none of them reads the fresh state rank 0 is about to write."""
        if self.path.exists():
            if resume is False:
                raise BenchError(f"an interrupted run with these settings exists ({self.path}): add "
                                 "--resume to continue it, or delete the file to start over")
            saved = json.loads(self.path.read_text())
            if saved.get("key") != self.key:
                raise BenchError(f"{self.path} does not match this run; delete it")
            self.progress = saved["progress"]
            self.resumed = True
            before_write()
            return
        if resume is True:
            raise BenchError(self._nothing_to_resume())
        before_write()
        self.save()  # from now on an interruption, however early, leaves a state to resume

    def _nothing_to_resume(self) -> str:
        others = sorted(self.directory.glob(f"{self.model_label}-*.json"))
        if not others:
            return f"--resume: no interrupted run of {self.model_label} in {self.directory}"
        lines = [f"--resume: the interrupted run(s) of {self.model_label} used different settings, "
                 "so their state cannot be reused:"]
        for other in others:
            try:
                old = json.loads(other.read_text())["key"]
            except (OSError, ValueError, KeyError):
                continue
            diff = [k for k in sorted(set(old) | set(self.key)) if old.get(k) != self.key.get(k)]
            lines.append(f"  {other.name}: differs in {', '.join(diff)}")
        lines.append("rerun with the original settings, or drop --resume to start afresh")
        return "\n".join(lines)

    def save(self) -> None:
        if not self.write:
            return
        atomic_write(self.path, json.dumps({"key": self.key, "progress": self.progress}).encode())

    def finish(self) -> None:
        if self.write:
            self.path.unlink(missing_ok=True)
