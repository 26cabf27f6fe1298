"""`bench sweep`: an attack set over every checkpoint, incrementally.

A (checkpoint sha256, attack label and protocol, threat model, points, seed) already in a record
is skipped unless forced; what is left for a checkpoint runs as one `bench run`. An interrupted
checkpoint resumes from its saved progress when the sweep is started again. The sweep ends by
rebuilding results.csv and the leaderboard.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import data
from bench.errors import BenchError
from bench.evaluation.committed import committed_checkpoint, committed_defenses
from bench.evaluation.config import RunConfig
from bench.evaluation.harness import RunResult, evaluate
from bench.evaluation.resolve import resolve_model
from bench.records.run_record import RunRecord, load_run_records


@dataclass(frozen=True)
class SweepItem:
    label: str
    todo: RunConfig | None  # the attacks still to run for this checkpoint; None when all are recorded
    skipped: list[str]  # attack labels already recorded


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


def plan(targets: list[RunConfig], force: bool) -> list[SweepItem]:
    """`targets`: one config per checkpoint, all with the same dataset, points and results folder."""
    if not targets:
        return []
    base = targets[0]
    records = load_run_records(base.results_dir) if base.results_dir.is_dir() else []
    total = len(data.load(base.dataset, data.Split.TEST, base.data_dir))
    index_sha = data.hash_indices(data.select_indices(total, base.n, base.sample_seed))
    items = []
    for cfg in targets:
        label, sha = _identity(cfg)
        done = set() if force else _done(records, sha, cfg, index_sha)
        attacks = cfg.attacks()
        todo = tuple(a.spec for a in attacks if (a.label, a.protocol) not in done)
        skipped = [a.label for a in attacks if (a.label, a.protocol) in done]
        items.append(SweepItem(label, dataclasses.replace(cfg, attack_specs=todo) if todo else None, skipped))
    return items


def run(items: list[SweepItem], on_result: Callable[[SweepItem, RunResult | None], None]) -> None:
    for item in items:
        on_result(item, evaluate(item.todo) if item.todo is not None else None)
