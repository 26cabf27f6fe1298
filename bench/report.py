"""Human-readable summary of a run: one table, then warnings and where the record is."""

from __future__ import annotations

from tabulate import tabulate

from bench.harness import WORST_CASE, RunResult
from bench.threat import format_eps


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def _ci(ci: list[float]) -> str:
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def format_summary(result: RunResult) -> str:
    r = result.record
    n = r["data"]["n"]
    rows = [["clean", "", _pct(r["clean"]["accuracy"]), _ci(r["clean"]["ci95"]), "", ""]]
    for label, res in r["attacks"].items():
        passes = res["passes"]
        rows.append([label, res["protocol"], _pct(res["robust_accuracy"]), _ci(res["ci95"]),
                     f"{passes['forward_per_example']:.1f} / {passes['backward_per_example']:.1f}",
                     f"{res['seconds']:.1f}"])
    w = r["worst_case"]
    rows.append([WORST_CASE.replace("_", " "), "all of the above", _pct(w["robust_accuracy"]), _ci(w["ci95"]), "", ""])
    head = (f"{r['model']['defense']} ({r['model']['arch']}, sha256 {r['model']['sha256'][:12]}) on "
            f"{r['data']['dataset']} test, n={n} ({r['data']['selection']}), "
            f"{r['threat']['norm']} ε={format_eps(r['threat']['eps'])}")
    table = tabulate(rows, headers=["attack", "protocol", "accuracy", "95% CI", "passes/ex (fwd / bwd)", "seconds"],
                     tablefmt="github")
    lines = [head, "", table, ""]
    lines += [f"warning: {w}" for w in r["warnings"]]
    lines.append(f"record: {result.record_path}")
    return "\n".join(lines)
