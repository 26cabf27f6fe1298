"""Tests tiered by measured cost: `pytest --quick` (`make test-quick`) runs the default tier minus
what spawns processes or a browser and minus every test that tests/durations.json measured above
QUICK_LIMIT_S; `BENCH_DURATIONS_OUT=FILE pytest` (`make test-durations`) measures them again."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import pytest

DURATIONS = Path(__file__).with_name("durations.json")
QUICK_LIMIT_S = 1.5  # per test, as measured in the full default tier
EXPENSIVE_MARKS = ("slow", "cuda", "subprocess", "browser")


def measured() -> dict[str, float]:
    if not DURATIONS.is_file():
        return {}
    return {str(k): float(v) for k, v in json.loads(DURATIONS.read_text())["seconds"].items()}


def quick_selection(items: list[pytest.Item], seconds: dict[str, float]) -> tuple[list[pytest.Item], list[pytest.Item]]:
    """(kept, deselected): a test new since the measurement is kept unless its marks say otherwise."""
    kept, dropped = [], []
    for item in items:
        expensive = any(item.get_closest_marker(mark) for mark in EXPENSIVE_MARKS)
        (dropped if expensive or seconds.get(item.nodeid, 0.0) > QUICK_LIMIT_S else kept).append(item)
    return kept, dropped


class DurationRecorder:
    """Setup + call + teardown per test, written when the session ends."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[report.nodeid] = self.seconds.get(report.nodeid, 0.0) + report.duration

    def pytest_sessionfinish(self) -> None:
        info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
        cpu = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                   platform.processor())
        machine = {"cpu": cpu, "cores": os.cpu_count(), "avx512_bf16": "avx512_bf16" in info,
                   "amx": "amx_tile" in info, "date": time.strftime("%Y-%m-%d")}
        total = sum(self.seconds.values())
        body = {"machine": machine, "total_s": round(total, 1),
                "seconds": {k: round(v, 3) for k, v in sorted(self.seconds.items())}}
        self.out.write_text(json.dumps(body, indent=1) + "\n")
