"""Hand-made run records (schema 2) for testing checks, tables and the leaderboard exactly."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.data import hash_indices
from bench.records.run_record import RunRecord
from bench.records.schema import SCHEMA_VERSION


def attack(flags: str, name: str, *, config: dict[str, Any] | None = None, stages: list[str] | None = None,
           warnings: list[str] | None = None) -> dict[str, Any]:
    return {"flags": flags, "attack": name, "config": config or {}, "stages": stages or [name],
            "warnings": warnings or []}


def record(attacks: dict[str, dict[str, Any]], *, sha: str = "a" * 64, eps: float = 0.1, norm: str = "linf",
           labels: list[int] | None = None, clean: str | None = None, broken_first_by: list[str | None] | None = None,
           date: str = "2026-01-01T00:00:00Z", file: str = "r.json", purpose: str = "evaluation",
           label: str = "toy", index: list[int] | None = None) -> dict[str, Any]:
    n = len(next(iter(attacks.values()))["flags"])
    clean = clean or "1" * n
    index = index or list(range(n))
    worst = "".join("1" if all(a["flags"][i] == "1" for a in attacks.values()) else "0" for i in range(n))
    return {
        "schema_version": SCHEMA_VERSION, "_file": file, "purpose": purpose,
        "threat": {"norm": norm, "eps": eps},
        "model": {"label": label, "sha256": sha, "path": f"checkpoints/{label}.pt", "defense": label,
                  "arch": "smallcnn", "variant": None, "training_budget": None},
        "data": {"dataset": "fashion-mnist", "n": n, "index_sha256": hash_indices(np.array(index)), "sample_seed": None},
        "config": {"seed": 0},
        "provenance": {"date": date, "device": "cpu", "precision": "fp32", "versions": {}, "git_sha": None},
        "clean": {"accuracy": clean.count("1") / n, "count": clean.count("1"), "ci95": [0.0, 1.0]},
        "attacks": {lbl: {"attack": a["attack"], "protocol": f"{a['attack']}/v1", "config": a["config"],
                          "stages": a["stages"], "count": a["flags"].count("1"),
                          "robust_accuracy": a["flags"].count("1") / n, "ci95": [0.0, 1.0], "seconds": 1.0,
                          "warnings": a["warnings"],
                          "passes": {"forward_per_example": 1.0, "backward_per_example": 1.0}}
                    for lbl, a in attacks.items()},
        "worst_case": {"robust_accuracy": worst.count("1") / n, "count": worst.count("1"), "ci95": [0.0, 1.0]},
        "warnings": [],
        "per_example": {"index": index, "label": labels or [i % 10 for i in range(n)], "clean_correct": clean,
                        "robust": {lbl: a["flags"] for lbl, a in attacks.items()}, "worst_case": worst,
                        "broken_first_by": broken_first_by or [None if f == "1" else lbl for lbl, a in
                                                               list(attacks.items())[:1] for f in a["flags"]]},
    }


def run(attacks: dict[str, dict[str, Any]], **kw: Any) -> RunRecord:
    """`record(...)` as the typed record the leaderboard, its checks and the gate read."""
    return RunRecord.of(record(attacks, **kw))


def typed(*records: dict[str, Any]) -> list[RunRecord]:
    return [RunRecord.of(r) for r in records]
