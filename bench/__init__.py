"""Robustness benchmarking harness: attacks, evaluation, run records and the `bench` CLI.

The Python API (`bench.evaluate`, `bench.certify`, `bench.eps_sweep`, `bench.attack`, `bench.load`, `bench.train`, `bench.sweep`, `bench.sweep_status`, `bench.inspect`,
`bench.audit`,
`bench.leaderboard`, `bench.check`, `bench.update_baselines`; docs/api.md) is imported on first
use, so `import bench` alone stays light (the API itself imports torch). The packages are the
layers (docs/design.md): records, loading, attacks, evaluation, auditing, reporting.
"""

from typing import Any

from bench.version import VERSION as __version__

API = ("evaluate", "certify", "eps_sweep", "attack", "load", "train", "sweep", "sweep_status", "inspect", "audit", "leaderboard", "check", "update_baselines",
       "Evaluation", "Attacked", "Estimate", "Trained", "Sweep", "SweepOutcome", "JobOptions", "ExecutorKind", "Inspection", "GateReport")
__all__ = [*API, "__version__"]


def __getattr__(name: str) -> Any:
    if name in API:
        from bench import api

        return getattr(api, name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
