"""The resume state of an unfinished run: per-attack progress saved after every batch, locked so two
runs cannot share it, and checked against the run's key so that it only resumes the same run."""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.errors import BenchError
from bench.files import atomic_write, read_json_object


@dataclass
class StageCost:
    """What one stage of an attack cost over a run, and what it did."""

    seconds: float = 0.0
    forward: int = 0
    backward: int = 0
    attacked: int = 0
    broken: int = 0


@dataclass
class AttackProgress:
    """One attack's state in a run, per test point (position in the run's points) and overall:
    saved after every batch, so that `--resume` continues to identical flags."""

    alive: list[int]  # 1: not broken yet (clean-correct and robust so far)
    broken_by: list[str | None]  # the attack (and component) that broke each point first
    margin: list[float | None]  # true-class margin at the attack's output point
    stage: int = 0  # the stage being run
    batch: int = 0  # the next batch of that stage
    stage_alive: list[int] | None = None  # what the current stage started on
    forward: int = 0
    backward: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    stage_cost: dict[str, StageCost] = field(default_factory=dict)

    @classmethod
    def fresh(cls, clean_correct: list[bool]) -> AttackProgress:
        n = len(clean_correct)
        return cls([int(c) for c in clean_correct], [None] * n, [None] * n)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, saved: Any, fresh: AttackProgress, label: str) -> AttackProgress:
        """A saved entry of attack `label`, admitted only if it could have come from this run: every
        field of the type and range the harness writes, one entry per point of the run, and no point
        alive (or broken) that `fresh` — the run's own clean predictions — says was misclassified.
        ValueError naming the first field that is not so."""
        if not isinstance(saved, dict) or set(saved) - _PROGRESS_FIELDS or not {"alive", "broken_by"} <= set(saved):
            raise ValueError("not an attack's progress")
        n, clean = len(fresh.alive), fresh.alive
        values = {**saved, "margin": saved.get("margin", [None] * n)}
        _require(_bits(values["alive"], n), "alive")
        _require(isinstance(values["broken_by"], list) and len(values["broken_by"]) == n and all(
            who is None or (isinstance(who, str) and who.split("/")[0] == label) for who in values["broken_by"]),
            "broken_by")
        _require(isinstance(values["margin"], list) and len(values["margin"]) == n and all(
            m is None or (_number(m) and math.isfinite(m)) for m in values["margin"]), "margin")
        for i, (alive, who) in enumerate(zip(values["alive"], values["broken_by"], strict=True)):
            _require(not (alive or who) or bool(clean[i]), f"point {i}: alive or broken, but misclassified clean")
            _require(not (alive and who), f"point {i}: alive, but broken by {who}")
        stage_alive = values.get("stage_alive")
        _require(stage_alive is None or (_bits(stage_alive, n) and all(
            s or not a for s, a in zip(stage_alive, values["alive"], strict=True))), "stage_alive")
        for key in ("stage", "batch", "forward", "backward"):
            _require(_whole(values.get(key, 0)), key)
        _require(_number(values.get("seconds", 0.0)) and 0 <= values.get("seconds", 0.0) < math.inf, "seconds")
        _require(isinstance(values.get("warnings", []), list) and all(
            isinstance(w, str) for w in values.get("warnings", [])), "warnings")
        costs = values.get("stage_cost") or {}
        _require(isinstance(costs, dict) and all(
            isinstance(v, dict) and set(v) <= _COST_FIELDS and all(_number(x) and x >= 0 for x in v.values())
            for v in costs.values()), "stage_cost")
        values["stage_cost"] = {k: StageCost(**v) for k, v in costs.items()}
        return cls(**values)


_PROGRESS_FIELDS = frozenset(f.name for f in dataclasses.fields(AttackProgress))
_COST_FIELDS = frozenset(f.name for f in dataclasses.fields(StageCost))


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(what)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53


def _bits(values: Any, n: int) -> bool:
    return isinstance(values, list) and len(values) == n and all(type(v) is int and v in (0, 1) for v in values)


def state_key_hash(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


# what each part of the resume key is called on the command line, for refusals that say what to change
KEY_FLAGS = {"model_sha256": "the model file", "index_sha256": "the evaluated points (--n, --sample-seed)",
             "dataset": "--dataset", "threat": "--norm/--eps", "attacks": "--attack", "seed": "--seed",
             "batch_size": "--batch-size", "cascade": "--cascade", "precision": "--precision"}


def _differences(old: Any, new: dict[str, Any]) -> str:
    if not isinstance(old, dict):
        return "unreadable settings"
    return ", ".join(KEY_FLAGS.get(k, k) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k))


class ResumeState:
    """Progress of an unfinished run, saved after every batch, keyed by what decides the outcome
    (model sha256, data-index hash, threat model, attack protocols and configs, seed, batch size).
    The run that writes a state holds a lock on it, so a second identical run is told that one is
    in progress instead of being offered a state that is still being written."""

    def __init__(self, directory: Path | None, model_label: str, key: dict[str, Any], write: bool = True) -> None:
        self.directory = directory  # None: progress kept in memory only (the Python API without save)
        self.write = write and directory is not None  # False on torchrun ranks other than 0: they only read it
        self.model_label = model_label
        self.key = key
        self.path = directory / f"{model_label}-{state_key_hash(key)[:16]}.json" if directory else None
        self.progress: dict[str, AttackProgress] = {}
        self.resumed = False
        self._lock: IO[str] | None = None

    def _take_lock(self) -> None:
        assert self.directory is not None and self.path is not None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle = open(self.path.with_suffix(".lock"), "w")  # noqa: SIM115 (held until finish)
        except OSError as exc:
            raise BenchError(f"cannot write progress to {self.directory} ({exc.strerror})") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise BenchError(f"another run with these settings is in progress (it holds {self.path}): wait for "
                             "it to finish, or stop it and rerun with --resume") from None
        self._lock = handle

    def _read(self) -> dict[str, Any]:
        assert self.path is not None
        try:
            saved = read_json_object(self.path, "resume state", BenchError)
        except BenchError as exc:
            raise BenchError(f"resume state is corrupt: {exc}; delete it to start over") from None
        if not isinstance(saved.get("progress"), dict):
            raise BenchError(f"resume state {self.path} is not a saved run: delete it to start over")
        if saved.get("key") != self.key:
            raise BenchError(f"resume state {self.path} belongs to a run with other settings "
                             f"({_differences(saved.get('key'), self.key)}): delete it")
        return saved

    def start(self, resume: bool | None, before_write: Callable[[], None] = lambda: None) -> None:
        """resume: True continues (and requires) saved progress, False refuses to overwrite it,
        None continues it when present (sweeps, which are resumed by running them again).
        `before_write` runs after the decision and before the first save: torchrun ranks wait
        there, so that none of them reads the fresh state rank 0 is about to write."""
        if self.write:
            self._take_lock()
        if self.path is not None and self.path.exists():
            if resume is False:
                raise BenchError(f"an interrupted run with these settings exists ({self.path}): add "
                                 "--resume to continue it, or delete the file to start over")
            self.progress = self._progress_of(self._read()["progress"], self.progress)
            self.resumed = True
            before_write()
            return
        if resume is True:
            raise BenchError(self._nothing_to_resume())
        before_write()
        self.save()  # from now on an interruption, however early, leaves a state to resume

    def _progress_of(self, saved: dict[str, Any], fresh: dict[str, AttackProgress]) -> dict[str, AttackProgress]:
        """The saved progress, checked against the run's own fresh progress (its attacks, points
        and clean predictions): a state that does not match its run is refused, never used."""
        if set(saved) != set(fresh):
            raise BenchError(f"resume state {self.path} names other attacks than this run: delete it to start over")
        try:
            return {label: AttackProgress.from_json(saved[label], fresh[label], label) for label in fresh}
        except ValueError as exc:
            raise BenchError(f"resume state {self.path} does not match this run ({exc}): delete it to start "
                             "over") from None

    def _nothing_to_resume(self) -> str:
        if self.directory is None:
            return "resume: this run keeps its progress in memory, so there is nothing to continue"
        others = sorted(self.directory.glob(f"{self.model_label}-*.json"))
        if not others:
            return f"--resume: no interrupted run of {self.model_label} in {self.directory}"
        lines = [f"--resume: the interrupted run(s) of {self.model_label} used different settings, "
                 "so their state cannot be reused:"]
        for other in others:
            try:
                old = read_json_object(other, "resume state", BenchError).get("key")
            except BenchError:
                old = None
            lines.append(f"  {other.name}: differs in {_differences(old, self.key)}")
        lines.append("rerun with the original settings, or drop --resume to start afresh")
        return "; ".join(lines)

    def save(self) -> None:
        if not self.write or self.path is None:
            return
        progress = {label: entry.to_json() for label, entry in self.progress.items()}
        atomic_write(self.path, json.dumps({"key": self.key, "progress": progress}).encode())

    def finish(self) -> None:
        if self.write and self.path is not None:
            self.path.unlink(missing_ok=True)
        self.release()

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing drops the lock; the empty lock file stays (removing it races)
            self._lock = None
