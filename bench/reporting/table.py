"""`results/results.csv`: one row per (run, attack) plus the run's worst case, derived from the records.

The table is rebuilt from every record and replaced atomically under a lock, never appended
to, so concurrent runs can neither corrupt it nor leave it missing a record.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import BenchError
from bench.files import write_if_changed
from bench.records.run_record import RunRecord
from bench.records.schema import WORST_CASE
from bench.stats import wilson_interval

COLUMNS = ["run", "date", "dataset", "norm", "eps", "purpose", "label", "defense", "variant", "arch",
           "checkpoint_sha256", "attack", "attack_name", "protocol", "config", "n", "sample_seed",
           "index_sha256", "seed", "clean_accuracy", "robust_accuracy", "robust_count", "ci95_low",
           "ci95_high", "forward_per_example", "backward_per_example", "seconds", "device", "precision",
           "bench_version", "torch_version", "git_sha", "schema_version"]


def _interval(count: int, n: int) -> dict[str, float]:
    """Recomputed from the counts, so every row uses the same (current) interval formula."""
    low, high = wilson_interval(count, n)
    return {"ci95_low": low, "ci95_high": high}


def _rows(record: RunRecord) -> Iterator[dict[str, Any]]:
    model, prov, n = record.model, record.provenance, record.n
    common = {"run": record.run, "date": prov.date, "dataset": record.dataset,
              "norm": record.threat.norm.value, "eps": record.threat.eps, "purpose": record.purpose.value,
              "label": model.label, "defense": model.defense, "variant": model.variant,
              "arch": model.arch, "checkpoint_sha256": model.sha256, "n": n,
              "sample_seed": record.sample_seed, "index_sha256": record.index_sha256,
              "seed": record.seed, "clean_accuracy": record.clean.value,
              "device": prov.device, "precision": prov.precision,
              "bench_version": prov.versions.get("bench"), "torch_version": prov.versions.get("torch"),
              "git_sha": prov.git_sha, "schema_version": record.schema_version}
    forward = backward = seconds = 0.0
    for label, res in record.attacks.items():
        forward, backward, seconds = (forward + res.forward_per_example, backward + res.backward_per_example,
                                      seconds + res.seconds)
        yield {**common, "attack": label, "attack_name": res.attack, "protocol": res.protocol,
               "config": json.dumps(res.config, sort_keys=True), "robust_accuracy": res.robust.value,
               "robust_count": res.robust.count, **_interval(res.robust.count, n),
               "forward_per_example": res.forward_per_example,
               "backward_per_example": res.backward_per_example, "seconds": res.seconds}
    worst = record.worst_case
    protocols = "+".join(sorted(res.protocol for res in record.attacks.values()))
    yield {**common, "attack": WORST_CASE, "attack_name": WORST_CASE, "protocol": protocols, "config": "",
           "robust_accuracy": worst.value, "robust_count": worst.count, **_interval(worst.count, n),
           "forward_per_example": forward, "backward_per_example": backward, "seconds": round(seconds, 3)}


def build_table(records: list[RunRecord]) -> pd.DataFrame:
    rows = [row for record in records for row in _rows(record)]
    table = pd.DataFrame(rows, columns=COLUMNS)
    order = {WORST_CASE: 1}
    table["_last"] = table["attack"].map(lambda a: order.get(a, 0))
    table = table.sort_values(["date", "run", "_last", "attack"], kind="stable").drop(columns="_last")
    return table.reset_index(drop=True)


FILTERS = ("dataset", "defense", "attack", "label", "purpose")


def filter_table(table: pd.DataFrame, **wanted: str | None) -> pd.DataFrame:
    for column, value in wanted.items():
        if column not in FILTERS:
            raise ValueError(column)
        if value is None:
            continue
        choices = sorted(str(v) for v in table[column].dropna().unique())
        if value not in choices:
            raise BenchError(f"no results with {column} {value!r}; present: {', '.join(choices) or 'none'}")
        table = table[table[column] == value]
    return table


def to_csv(table: pd.DataFrame) -> str:
    return str(table.to_csv(index=False, lineterminator="\n"))


@contextlib.contextmanager
def results_lock(results_root: Path) -> Iterator[None]:
    """Serialize rebuilds of derived files, so the last writer has read every finished record."""
    results_root.mkdir(parents=True, exist_ok=True)
    with open(results_root / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_table(table: pd.DataFrame, path: Path) -> None:
    write_if_changed(path, to_csv(table).encode())
