"""Run-record schema versions: reading any past version, refusing future ones.

Records on disk are never rewritten; a reader upgrades them in memory, one version step at a
time, so every consumer (table, leaderboard, gate) sees the current shape.

Version history
- 1: the vertical slice's records.
- 2: `model.label` (the short name used for rows and files), `data.sample_seed` (structured, was
  only inside the `data.selection` text), `purpose` (evaluation or eps-sweep: sweeps feed the
  plots, not the leaderboard's tables; worst-case: a cascade run, whose per-attack flags are
  cumulative, so only its worst case is read), and checkpoint paths relative to the repository when
  the checkpoint lies inside it (so records compare across clones); optionally
  `per_example.margin` (true-class margin at each attack's output, 4 decimals).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.files import read_json_object
from bench.records.rules import problems

SCHEMA_VERSION = 2
WORST_CASE = "worst_case"  # the label of "robust under every attack of the run"
REPO_ROOT = Path(__file__).resolve().parents[2]


class RunPurpose(str, enum.Enum):
    EVALUATION = "evaluation"
    EPS_SWEEP = "eps-sweep"
    CASCADE = "worst-case"  # a cascade (`--cascade`): per-attack flags are cumulative; only its worst case counts


class RecordError(BenchError):
    """A record file that cannot be used; the message names the file."""


def portable_path(path: Path) -> str:
    """A checkpoint path as recorded: relative to the repository when inside it."""
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(REPO_ROOT))
    except ValueError:
        return str(resolved)


def _v1_to_v2(record: dict[str, Any]) -> dict[str, Any]:
    model, data = record["model"], record["data"]
    path = Path(model["path"])
    for key in ("variant", "hyperparameters", "training_budget", "trained_by", "paper"):
        model.setdefault(key, None)  # the first v1 records predate the defenses registry
    model["label"] = model.get("defense") or path.stem
    if "checkpoints" in path.parts:  # absolute paths of the machine that wrote the record
        model["path"] = str(Path(*path.parts[path.parts.index("checkpoints"):]))
    selection = data.get("selection", "first-n")
    data["sample_seed"] = int(selection.split("=", 1)[1]) if selection.startswith("sample-seed=") else None
    record["purpose"] = RunPurpose.EVALUATION.value
    return record


# version v → function that turns a v record into a v+1 record
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2}

def upgrade(record: dict[str, Any], source: str) -> dict[str, Any]:
    """Bring a parsed record to SCHEMA_VERSION; `source` names it in errors."""
    version = record.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise RecordError(f"{source}: not a run record (no integer schema_version)")
    if version > SCHEMA_VERSION:
        raise RecordError(f"{source}: schema_version {version} is newer than this bench understands "
                          f"({SCHEMA_VERSION}); upgrade the suite to read it")
    try:
        while version < SCHEMA_VERSION:
            record = MIGRATIONS[version](record)
            version += 1
            record["schema_version"] = version
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise RecordError(f"{source}: cannot migrate from schema {record.get('schema_version')}: "
                          f"missing or malformed {exc}") from None
    _validate(record, source)
    return record


def _validate(record: dict[str, Any], source: str) -> None:
    problem = problems(record)
    if problem is not None:
        raise RecordError(f"{source}: not a valid run record: {problem}")


def load_record(path: Path) -> dict[str, Any]:
    return upgrade(read_json_object(path, "record", RecordError), str(path))


def load_records(directory: Path) -> list[dict[str, Any]]:
    """Every record in `directory`, upgraded, in file-name order (names start with the UTC time).

    One bad file stops the load with its name: a silently skipped record is a wrong table.
    """
    if not directory.is_dir():
        raise BenchError(f"no results folder at {directory}")
    records = []
    for path in sorted(directory.glob("*.json")):
        record = load_record(path)
        record["_file"] = path.name
        records.append(record)
    return records
