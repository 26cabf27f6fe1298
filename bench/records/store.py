"""Run records are the source of truth: one JSON file per run under results/runs/, created with an
exclusive link so that it can never overwrite another record, and written completely before it appears.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from bench.errors import BenchError
from bench.files import atomic_write
from bench.provenance import now_iso
from bench.records.run_record import RunRecord


def record_text(record: RunRecord) -> str:
    """A record file's text: `RunRecord.to_json`, keys sorted, one space of indent."""
    return json.dumps(record.to_json(), indent=1, sort_keys=True) + "\n"


def write_record(results_dir: Path, record: RunRecord, stem: str) -> Path:
    text = record_text(record)
    for _ in range(5):
        path = results_dir / f"{now_iso().replace(':', '')}-{stem}-{uuid.uuid4().hex[:8]}.json"
        try:
            atomic_write(path, text.encode(), exclusive=True)
            return path
        except FileExistsError:
            continue
    raise BenchError(f"could not create a new record file in {results_dir}")
