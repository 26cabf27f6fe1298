"""The audit's outputs: a markdown report for people, a JSON summary for the leaderboard."""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabulate import tabulate

from bench.attacks import format_attacks
from bench.auditing.binarization import BinarizationResult
from bench.auditing.checks import LABELS, Check, CheckResult
from bench.auditing.runner import Audit, AuditConfig, Verdict
from bench.data import DATASETS
from bench.errors import BenchError
from bench.files import atomic_write, read_json_object
from bench.records import rules
from bench.stats import Proportion
from bench.threat import Norm, ThreatModel

AUDIT_SCHEMA = 3  # 2: the binarization test; 3: checks stored by identifier, not by their label


def _cell(k: int, n: int) -> str:
    return Proportion(k, n).text()


def _binarization_summary(result: BinarizationResult | None, cfg: AuditConfig) -> dict[str, Any] | None:
    if result is None:
        return None
    settings = result.settings
    return {"applicable": result.applicable, "note": result.reason, "attack_list": format_attacks(cfg.binarization_attacks),
            "settings": {"points": settings.points, "inner": settings.inner, "boundary": settings.boundary,
                         "gap": settings.gap, "closeness": settings.closeness, "validation": settings.validation,
                         "random_draws": settings.random_draws},
            "tried": result.tried, "construction_failed": list(result.construction_failed),
            "validation_accuracy": None if result.tasks == 0 else result.validation_accuracy,
            "random_baseline": [result.random_baseline, result.tasks],
            "attacks": {a.label: {"passed": a.passed, "tasks": a.tasks, "failed": list(a.failed_indices),
                                  "fails_test": a.fails_test} for a in result.attacks}}


def _binarization_lines(result: BinarizationResult | None) -> list[str]:
    if result is None:
        return []
    lines = ["## Binarization test (is the attack strong enough for this model?)", ""]
    if not result.applicable:
        return lines + [f"Not applicable: {result.reason}.", ""]
    s = result.settings
    rows = [[a.label, _cell(a.passed, a.tasks), "FAIL" if a.fails_test else "pass",
             ", ".join(map(str, a.failed_indices[:20])) + (" …" if len(a.failed_indices) > 20 else "") or "–"]
            for a in result.attacks]
    lines += [f"One task per clean-correct audit point (up to {s.points}): a linear two-class readout on the "
              f"model's features ({result.reason}) separates {s.inner} inner points (x and draws of the "
              f"{1 - s.gap:g}·ε ball) from {s.boundary} point(s) on the ε-sphere, so an adversarial example "
              "exists; an attack passes a task when it finds one (verified in fp32).", "",
              tabulate(rows, headers=["attack", "tasks passed [95% CI]", "result", "points it missed"],
                       tablefmt="github"), "",
              f"- tasks: {result.tasks} of {result.tried} (construction failed on "
              f"{', '.join(map(str, result.construction_failed)) or 'none'})",
              "- readout validation accuracy (fresh inner draws called inner): "
              + (f"{100 * result.validation_accuracy:.1f}%" if result.tasks else "n/a"),
              f"- random baseline ({s.random_draws} draws of the ε-ball per task found the boundary class): "
              f"{_cell(result.random_baseline, result.tasks)} of tasks", ""]
    return lines


def summary(audit: Audit, cfg: AuditConfig) -> dict[str, Any]:
    run = cfg.run
    return {
        "schema_version": AUDIT_SCHEMA,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": {"label": audit.label, "sha256": audit.sha256},
        "dataset": run.dataset, "threat": {"norm": run.threat.norm.value, "eps": run.threat.eps},
        "n": audit.n, "seed": run.seed,
        "verdict": audit.verdict.value, "headline": audit.headline,
        "robust": {"standard": {k: list(v) for k, v in audit.standard.items()},
                   "adaptive": {k: list(v) for k, v in audit.adaptive.items()},
                   "baseline": {k: list(v) for k, v in audit.baseline.items()},
                   "worst_case": {k: list(v) for k, v in audit.worst.items()}},
        "agreement": audit.agreement,
        "checks": [{"check": c.check.value, "passed": c.passed, "detail": c.detail} for c in audit.checks],
        "records": audit.records,
        "binarization": _binarization_summary(audit.binarization, cfg),
    }


def render(audit: Audit, cfg: AuditConfig) -> str:
    run = cfg.run
    lines = [f"# Audit: {audit.label} ({run.dataset}, {run.threat.norm.value} ε={run.threat.eps:g})", "",
             f"**Verdict: {audit.verdict.value}** — {audit.headline}", "",
             f"Model sha256 `{audit.sha256}`. Standard attacks: `{format_attacks(cfg.standard)}`; adaptive: "
             f"`{format_attacks(cfg.adaptive)}` (expanded below); baseline: `{format_attacks(cfg.baseline)}`. Robust accuracy with 95% Wilson intervals on the same points.", ""]
    if audit.standard:
        rows = [["standard", label, _cell(*v)] for label, v in audit.standard.items()]
        rows += [["adaptive", label, _cell(*v)] for label, v in audit.adaptive.items()]
        rows += [["baseline", label, _cell(*v)] for label, v in audit.baseline.items()]
        rows += [["worst case", what, _cell(*v)] for what, v in audit.worst.items()]
        lines += [tabulate(rows, headers=["kind", "attack", "robust accuracy"], tablefmt="github"), "",
                  "## Per-example agreement (standard worst case vs adaptive worst case)", "",
                  tabulate(list(audit.agreement.items()), headers=["points", "count"], tablefmt="github"), ""]
    lines += ["## Checks", "",
              tabulate([[c.check.label, "pass" if c.passed else "FAIL", c.detail] for c in audit.checks],
                       headers=["check", "result", "detail"], tablefmt="github"), ""]
    lines += _binarization_lines(audit.binarization)
    if audit.records:
        lines += ["Run records used: " + ", ".join(f"`{f}`" for f in audit.records), ""]
    return "\n".join(lines)


def write(audit: Audit, cfg: AuditConfig) -> tuple[Path, Path]:
    """`<audits_dir>/<date>-<dataset>-<label>.{md,json}`; an existing audit is never overwritten."""
    info = summary(audit, cfg)
    try:
        AUDIT(info, "")  # written by the definition it is read by
    except rules.Broken as exc:
        raise AssertionError(f"the audit summary about to be written is invalid: {exc}") from None
    stem = f"{info['date'].replace(':', '').replace('-', '')}-{cfg.run.dataset}-{audit.label}"
    cfg.audits_dir.mkdir(parents=True, exist_ok=True)
    suffix = 0
    while (cfg.audits_dir / f"{stem}{f'-{suffix}' if suffix else ''}.json").exists():
        suffix += 1
    stem += f"-{suffix}" if suffix else ""
    md, js = cfg.audits_dir / f"{stem}.md", cfg.audits_dir / f"{stem}.json"
    atomic_write(md, (render(audit, cfg) + "\n").encode())
    atomic_write(js, (json.dumps(info, indent=2, sort_keys=True) + "\n").encode())
    return md, js


def _count_pair(value: Any, where: str) -> None:
    """[robust, n] as the audit writes it."""
    rules.list_of(rules.integer(lo=0), length=2)(value, where)
    if value[0] > value[1]:
        raise rules.Broken(f"{where}: {value[0]} robust of {value[1]} points")


_PAIRS = rules.map_of(_count_pair)
_CHECK_NAMES = tuple(c.value for c in Check) + tuple(LABELS.values())  # identifiers; labels in schema ≤ 2
AUDIT = rules.Obj({
    "schema_version": rules.integer(lo=1), "date": rules.DATE,
    "model": rules.Obj({"label": rules.string(nonempty=True), "sha256": rules.SHA256}),
    "dataset": rules.string(choices=tuple(DATASETS.names())),
    "threat": rules.Obj({"norm": rules.string(choices=tuple(n.value for n in Norm)), "eps": rules.number(positive=True)}),
    "n": rules.integer(lo=1), "seed": rules.integer(lo=0),
    "verdict": rules.string(choices=tuple(v.value for v in Verdict)), "headline": rules.string(),
    "robust": rules.Obj({"standard": _PAIRS, "adaptive": _PAIRS, "worst_case": _PAIRS}, {"baseline": _PAIRS}),
    "agreement": rules.map_of(rules.integer(lo=0)),
    "checks": rules.list_of(rules.Obj({"check": rules.string(choices=_CHECK_NAMES), "passed": rules.boolean,
                                       "detail": rules.string()})),
    "records": rules.list_of(rules.string())},
    {"binarization": rules.nullable(rules.Obj(
        {"applicable": rules.boolean, "attacks": rules.map_of(rules.Obj(
            {"passed": rules.integer(lo=0), "tasks": rules.integer(lo=0), "fails_test": rules.boolean},
            {"failed": rules.list_of(rules.integer(lo=0))}))},
        {"note": rules.string(), "attack_list": rules.string(), "settings": rules.json_object,
         "tried": rules.integer(lo=0), "construction_failed": rules.list_of(rules.integer(lo=0)),
         "validation_accuracy": rules.nullable(rules.number(lo=0.0, hi=1.0)),
         "random_baseline": rules.list_of(rules.integer(lo=0), length=2)}))})


def upgrade(audit: dict[str, Any]) -> dict[str, Any]:
    """A validated audit summary of any schema as the current schema writes it (checks by identifier)."""
    by_label = {label: check.value for check, label in LABELS.items()}
    checks = [{**c, "check": by_label.get(c["check"], c["check"])} for c in audit["checks"]]
    return {**audit, "schema_version": max(audit["schema_version"], AUDIT_SCHEMA), "checks": checks}


@dataclass(frozen=True)
class BinarizationScore:
    passed: int
    tasks: int
    fails_test: bool


@dataclass(frozen=True)
class AuditSummary:
    """One audit file as the leaderboard reads it: validated (`AUDIT`), upgraded, then typed."""

    file: str
    date: str
    label: str
    sha256: str
    dataset: str
    threat: ThreatModel
    n: int
    verdict: str  # a `Verdict` value (validated)
    standard: Mapping[str, Proportion]  # attack label → robust on the audit points
    adaptive: Mapping[str, Proportion]
    worst_case: Mapping[str, Proportion]  # standard, adaptive, audit
    checks: tuple[CheckResult, ...]
    binarization: Mapping[str, BinarizationScore] | None  # None: not run; empty: not applicable
    folder: str = "audits"  # where the report is, relative to the board that links it

    @property
    def report(self) -> str:
        """The markdown report written beside the file."""
        return f"{self.file.removesuffix('.json')}.md"

    @classmethod
    def of(cls, audit: Mapping[str, Any], file: str) -> AuditSummary:
        robust = audit["robust"]

        def counts(pairs: Mapping[str, list[int]]) -> dict[str, Proportion]:
            return {label: Proportion(*pair) for label, pair in pairs.items()}

        test = audit.get("binarization")
        scores = None
        if test is not None:  # an audit from before the test has none; an inapplicable test, no attacks
            scores = {label: BinarizationScore(a["passed"], a["tasks"], a["fails_test"])
                      for label, a in test["attacks"].items() if test["applicable"]}
        return cls(file, audit["date"], audit["model"]["label"], audit["model"]["sha256"], audit["dataset"],
                   ThreatModel(Norm(audit["threat"]["norm"]), float(audit["threat"]["eps"])), audit["n"],
                   audit["verdict"], counts(robust["standard"]), counts(robust["adaptive"]),
                   counts(robust["worst_case"]),
                   tuple(CheckResult(Check(c["check"]), c["passed"], c["detail"]) for c in audit["checks"]), scores)


def read_audit(path: Path) -> AuditSummary:
    """One audit summary, validated like a run record, in the current schema and typed."""
    audit = read_json_object(path, "audit", BenchError)
    try:
        AUDIT(audit, "")
    except rules.Broken as exc:
        raise BenchError(f"{path}: not a valid audit summary: {exc}") from None
    return AuditSummary.of(upgrade(audit), path.name)


def load_audits(audits_dir: Path) -> list[AuditSummary]:
    """Every audit summary, oldest first (so the newest per model wins when folded into a dict)."""
    if not audits_dir.is_dir():
        return []
    found = [read_audit(p) for p in sorted(audits_dir.glob("*.json"))]
    return sorted(found, key=lambda a: (a.date, a.file))
