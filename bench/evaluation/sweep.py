"""`bench sweep`: an attack set over every checkpoint, incrementally.

A (checkpoint sha256, attack label and protocol, threat model, points, seed) already in a record
is skipped unless forced; what is left for a checkpoint runs as one `bench run`. An interrupted
checkpoint resumes from its saved progress when the sweep is started again. The sweep ends by
rebuilding results.csv and the leaderboard.

Each checkpoint is planned and run while its sweep lock is held (a file lock in the results
folder's .state/, which holds across processes and across nodes sharing the folder), so two
sweeps of the same checkpoint — in one process, as cluster jobs, or both — never run the same cells
twice: the second waits, then finds them recorded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bench import data
from bench.errors import BenchError
from bench.evaluation.committed import committed_checkpoint, committed_defenses
from bench.evaluation.config import RunConfig
from bench.evaluation.harness import RunResult, evaluate
from bench.evaluation.resolve import resolve_model
from bench.records.run_record import RunRecord, load_run_records

T = TypeVar("T")


@dataclass(frozen=True)
class SweepItem:
    label: str
    todo: RunConfig | None  # the attacks still to run for this checkpoint; None when all are recorded
    skipped: list[str]  # attack labels already recorded
    sha256: str  # the checkpoint's, as the records name it


def checkpoints_in(folder: Path) -> list[Path]:
    found = sorted(p for p in folder.glob("*.pt") if p.with_suffix(".json").is_file())
    if not found:
        raise BenchError(f"no checkpoints with sidecars (*.pt + *.json) in {folder}")
    return found


def registered_checkpoints(dataset: str) -> list[str]:
    names = committed_defenses(dataset)
    if not names:
        raise BenchError(f"no committed checkpoints for {dataset}: train them with `make checkpoints` or "
                         "`bench train --defense NAME`")
    return names


def _identity(cfg: RunConfig) -> tuple[str, str]:
    """(label, sha256) of the configured model; a user model spec is loaded to learn them."""
    if cfg.model is not None:
        resolved = resolve_model(cfg)
        return resolved.label, resolved.sha256
    return cfg.defense or (cfg.checkpoint.stem if cfg.checkpoint else ""), _sha256(cfg)


def _sha256(cfg: RunConfig) -> str:
    from defenses.training import checkpoints

    path = cfg.checkpoint if cfg.checkpoint is not None else committed_checkpoint(cfg.dataset, str(cfg.defense))
    if path is None:
        raise BenchError(f"defense {cfg.defense!r} has no recipe for {cfg.dataset}")
    return str(checkpoints.read_sidecar(path)["sha256"])


def _done(records: list[RunRecord], sha: str, cfg: RunConfig, index_sha: str) -> set[tuple[str, str]]:
    """(attack label, protocol) pairs recorded for this checkpoint under the same conditions."""
    done = set()
    for r in records:
        if r.model.sha256 == sha and r.index_sha256 == index_sha and r.threat == cfg.threat and r.seed == cfg.seed:
            done |= {(label, res.protocol) for label, res in r.attacks.items()}
    return done


def _conditions(cfg: RunConfig) -> str:
    """The digest of the data points of `cfg`'s run (dataset, count, sample seed)."""
    return _index_sha256(cfg.dataset, cfg.data_dir, cfg.n, cfg.sample_seed)


@functools.lru_cache(maxsize=16)
def _index_sha256(dataset: str, data_dir: Path | None, n: int | None, sample_seed: int | None) -> str:
    """Cached: a sweep asks once per checkpoint, and the test set does not change under a process."""
    total = len(data.load(dataset, data.Split.TEST, data_dir))
    return data.hash_indices(data.select_indices(total, n, sample_seed))


def conditions_key(cfg: RunConfig) -> str:
    """What besides the checkpoint decides whether a record answers a cell (as `_done` compares)."""
    key = [_conditions(cfg), cfg.threat.norm.value, cfg.threat.eps, cfg.seed]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]


def _item(cfg: RunConfig, identity: tuple[str, str], records: list[RunRecord], index_sha: str,
          force: bool) -> SweepItem:
    label, sha = identity
    done = set() if force else _done(records, sha, cfg, index_sha)
    attacks = cfg.attacks()
    todo = tuple(a.spec for a in attacks if (a.label, a.protocol) not in done)
    skipped = [a.label for a in attacks if (a.label, a.protocol) in done]
    return SweepItem(label, dataclasses.replace(cfg, attack_specs=todo) if todo else None, skipped, sha)


def _records(results_dir: Path) -> list[RunRecord]:
    return load_run_records(results_dir) if results_dir.is_dir() else []


def plan(targets: list[RunConfig], force: bool) -> list[SweepItem]:
    """`targets`: one config per checkpoint, all with the same dataset, points and results folder."""
    if not targets:
        return []
    records, index_sha = _records(targets[0].results_dir), _conditions(targets[0])
    return [_item(cfg, _identity(cfg), records, index_sha, force) for cfg in targets]


@contextlib.contextmanager
def checkpoint_lock(results_dir: Path, sha256: str) -> Iterator[None]:
    """Held while one checkpoint is planned and run: a second sweep of it waits here."""
    folder = results_dir / ".state"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / f"sweep-{sha256[:16]}.lock", "w")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise BenchError(f"cannot write the sweep lock in {folder} ({exc.strerror})") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the handle closes or the process dies
        yield


def run_one(cfg: RunConfig, force: bool, run: Callable[[RunConfig], T]) -> tuple[SweepItem, T | None]:
    """One checkpoint of a sweep: planned against the records as they are once its lock is held,
    then what is left run by `run` (`evaluate` in this process; a cluster job may shard it)."""
    known = _identity(cfg)
    with checkpoint_lock(cfg.results_dir, known[1]):
        item = _item(cfg, known, _records(cfg.results_dir), _conditions(cfg), force)
        return item, (run(item.todo) if item.todo is not None else None)


def run(targets: list[RunConfig], force: bool,
        on_result: Callable[[SweepItem, RunResult | None], None]) -> None:
    for cfg in targets:
        on_result(*run_one(cfg, force, evaluate))
