"""What `bench run` prints about a run: one table, then warnings and where the record is; or one JSON object."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tabulate import tabulate

from bench.records.run_record import RunRecord
from bench.records.schema import WORST_CASE
from bench.threat import format_eps


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def _ci(ci: tuple[float, float]) -> str:
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def json_summary(r: RunRecord, record_path: Path | None) -> dict[str, Any]:
    """`bench run --json`'s one object: accuracies, warnings, where the record (and the
    adversarial examples, when saved) went."""
    robust = {label: res.robust.value for label, res in r.attacks.items()}
    robust[WORST_CASE] = r.worst_case.value
    return {"dataset": r.dataset, "defense": r.model.defense, "checkpoint": r.model.path, "n": r.n,
            "threat": {"norm": r.threat.norm.value, "eps": r.threat.eps}, "clean_accuracy": r.clean.value,
            "robust_accuracy": robust, "warnings": list(r.warnings), "record": str(record_path),
            **({"certified_accuracy": {m: c.certified.value for m, c in r.certified.items()}} if r.certified else {}),
            **({"adversarial_examples": str(adv)} if record_path is not None
               and (adv := record_path.with_suffix(".adv.pt")).is_file() else {})}


def format_summary(r: RunRecord, record_path: Path | None) -> str:
    rows = [["clean", "", _pct(r.clean.value), _ci(r.clean.interval), "", ""]]
    for label, res in r.attacks.items():
        rows.append([label, res.protocol, _pct(res.robust.value), _ci(res.robust.interval),
                     f"{res.forward_per_example:.1f} / {res.backward_per_example:.1f}", f"{res.seconds:.1f}"])
    w = r.worst_case
    rows.append([WORST_CASE.replace("_", " "), "all of the above", _pct(w.value), _ci(w.interval), "", ""])
    for method, cert in r.certified.items():  # the other side: proven robust
        rows.append([f"certified ({method})", "exact" if cert.exact else "lower bound", _pct(cert.certified.value),
                     _ci(cert.certified.interval), "", f"{cert.seconds:.1f}"])
    head = (f"{r.model.label} ({r.model.arch}, sha256 {r.model.sha256[:12]}) on {r.dataset} test, n={r.n} "
            f"({r.selection}), {r.threat.norm.value} ε={format_eps(r.threat.eps)}")
    table = tabulate(rows, headers=["attack", "protocol", "accuracy", "95% CI", "passes/ex (fwd / bwd)", "seconds"],
                     tablefmt="github")
    lines = [head, "", table, ""]
    lines += [f"warning: {w}" for w in r.warnings]
    lines.append(f"record: {record_path}")
    return "\n".join(lines)
