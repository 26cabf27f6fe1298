"""`bench check`: the CI regression gate on robust accuracy.

Each checkpoint is re-evaluated under one fixed protocol (points, attacks, seed, batch size) and
its per-example flags are compared, point by point, with a committed baseline. A point that
flips between "broken" and "robust" (or between wrong and right for clean accuracy) is evidence;
the rule for how much is too much is stated here, not tuned to pass:

1. Churn: numerical nondeterminism (another CPU, BLAS or thread count) may flip a point with
   probability at most NOISE_RATE, independently. A measure is red when its number of flips
   exceeds the 1 − ALPHA quantile of Binomial(n, NOISE_RATE).
2. Direction: noise flips both ways equally. A measure is red when the exact one-sided sign test
   says one direction outnumbers the other at level ALPHA; the same test runs per attack pooled
   over every checkpoint, which catches a small systematic weakening spread over many models.
3. Fingerprint: flags alone miss changes that leave robust accuracy level on a given model
   (measured on the committed PGD-AT checkpoint: PGD without its random start flips 0 of 500
   flags). So each attack's true-class margin at its output point is compared too; a point whose
   margin moved by more than MARGIN_TOLERANCE counts as changed, under the churn rule of (1).
   Measured: 0 of 500 margins move between 1 and 2 threads; 414 of 500 without the random start.
4. Work: an attack's forward and backward passes per example must stay within PASS_TOLERANCE of
   the baseline's (APGD cut from 100 to 10 iterations changes 3 of 500 flags on that checkpoint,
   but ~90% of its passes).
5. Identity: the checkpoint's sha256, the test points and the protocol must equal the baseline's.

Baselines are JSON files under results/baselines/<dataset>/<label>.json, re-blessed only by
`bench check --update-baseline --reason TEXT`, which appends to their history.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.attacks.specs import AttackSpec, format_attacks, parse_attacks
from bench.errors import BenchError
from bench.evaluation.committed import committed_defenses
from bench.evaluation.config import RunConfig
from bench.evaluation.harness import evaluate
from bench.files import atomic_write, checked_label, read_json_object
from bench.loading.sources import ModelSpec
from bench.provenance import git_sha, now_iso
from bench.records import rules
from bench.records.run_record import RunRecord, flag_text
from bench.records.schema import WORST_CASE
from bench.stats import binomial_quantile, sign_test_greater

BASELINE_VERSION = 1
NOISE_RATE = 0.005
ALPHA = 0.001
MARGIN_TOLERANCE = 1e-3
PASS_TOLERANCE = 0.05
CLEAN = "clean"


@dataclass(frozen=True)
class GateProtocol:
    """What `bench check` runs. Changing any field invalidates every baseline (re-bless)."""

    n: int = 500
    attacks: tuple[AttackSpec, ...] = parse_attacks("fgsm,pgd,cw,apgd-ce")
    seed: int = 0
    batch_size: int = 500

    def as_json(self) -> dict[str, Any]:
        """As a baseline stores it (the attacks as their `--attack` text)."""
        return {"n": self.n, "attacks": format_attacks(self.attacks), "seed": self.seed, "batch_size": self.batch_size}


@dataclass(frozen=True)
class Target:
    """One model under the gate: a registered defense, a checkpoint file, or any model spec
    `bench run --model` takes (its baseline pins the weights' sha256 and the declared input)."""

    label: str
    dataset: str
    defense: str | None = None
    checkpoint: Path | None = None
    model: ModelSpec | None = None


@dataclass
class Measure:
    name: str  # clean, an attack label, or worst_case
    n: int
    to_robust: int  # broken → robust (wrong → right for clean)
    to_broken: int
    baseline_count: int
    count: int
    margin_changes: int = 0  # points whose margin at the attack's output moved (attacks only)
    passes: tuple[list[float], list[float]] | None = None  # (baseline, now) forward/backward per example

    @property
    def flips(self) -> int:
        return self.to_robust + self.to_broken

    def problem(self) -> str | None:
        limit = churn_limit(self.n)
        if self.flips > limit:
            return f"{self.flips} points flipped (noise allows {limit})"
        for ahead, behind, word in ((self.to_robust, self.to_broken, "robust"), (self.to_broken, self.to_robust, "broken")):
            if ahead > behind and sign_test_greater(ahead, behind) < ALPHA:
                return f"systematic drift towards {word} ({ahead} vs {behind}, p={sign_test_greater(ahead, behind):.1e})"
        if self.margin_changes > limit:
            return (f"the attack's output moved on {self.margin_changes} points (margin change > "
                    f"{MARGIN_TOLERANCE:g}; noise allows {limit}): the attack behaves differently")
        if self.passes is not None:
            for kind, old, new in zip(("forward", "backward"), *self.passes, strict=True):
                if abs(new - old) > PASS_TOLERANCE * max(old, 1.0):
                    return f"{kind} passes per example {old:.1f} → {new:.1f}: the attack does different work"
        return None


@dataclass
class TargetComparison:
    """One gated checkpoint against its baseline: identity problems and each measure's flips."""

    target: Target
    baseline: Path
    identity: list[str] = field(default_factory=list)
    measures: list[Measure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.identity and all(m.problem() is None for m in self.measures)


def churn_limit(n: int) -> int:
    return binomial_quantile(n, NOISE_RATE, 1 - ALPHA)


def baseline_path(baselines: Path, target: Target) -> Path:
    return baselines / target.dataset / f"{target.label}.json"


def _flags_of(record: RunRecord) -> dict[str, str]:
    return {CLEAN: flag_text(record.clean_correct),
            **{label: flag_text(res.flags) for label, res in record.attacks.items()}, WORST_CASE: flag_text(record.worst_flags)}


def _margins_of(record: RunRecord) -> dict[str, list[float | None]]:
    return {label: list(res.margins) for label, res in record.attacks.items() if res.margins is not None}


def _passes_of(record: RunRecord) -> dict[str, list[float]]:
    return {label: [res.forward_per_example, res.backward_per_example] for label, res in record.attacks.items()}


def _threat_of(record: RunRecord) -> dict[str, Any]:
    return {"norm": record.threat.norm.value, "eps": record.threat.eps}


def evaluate_target(target: Target, protocol: GateProtocol, quiet: bool) -> RunRecord:
    from bench.data import DATASETS

    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        cfg = RunConfig(dataset=target.dataset, threat=DATASETS.get(target.dataset).default_threat(),
                        attack_specs=protocol.attacks, defense=target.defense, checkpoint=target.checkpoint,
                        model=target.model, n=protocol.n, seed=protocol.seed, batch_size=protocol.batch_size,
                        results_dir=Path(tmp), quiet=quiet)
        return evaluate(cfg).record


BASELINE = rules.Obj({
    "baseline_version": rules.integer(lo=1), "protocol": rules.json_object,
    "threat": rules.Obj({"norm": rules.string(), "eps": rules.number(positive=True)}),
    "checkpoint": rules.Obj({"label": rules.string(), "path": rules.string(), "sha256": rules.SHA256},
                            {"input": rules.nullable(rules.string()), "model": rules.nullable(rules.json_object)}),
    "index_sha256": rules.nullable(rules.SHA256), "flags": rules.map_of(rules.flags),
    "margins": rules.map_of(rules.list_of(rules.nullable(rules.number()))),
    "passes": rules.map_of(rules.list_of(rules.number(lo=0.0))), "history": rules.list_of(rules.json_object)},
    {"dataset": rules.string(), "n": rules.integer(lo=1)})


@dataclass(frozen=True)
class Baseline:
    """A gate baseline as its file holds it: validated by `BASELINE`, read and written by field."""

    protocol: dict[str, Any]  # `GateProtocol.as_json()` when it was blessed
    threat: dict[str, Any]  # {"norm", "eps"}
    checkpoint: dict[str, Any]  # label, path, sha256, input (since inputs were pinned), model (a --model spec)
    index_sha256: str | None
    flags: dict[str, str]  # measure → 0/1 per point
    margins: dict[str, list[float | None]]  # attack → true-class margin at its output per point
    passes: dict[str, list[float]]  # attack → [forward, backward] per example
    history: list[dict[str, Any]]  # one entry per blessing: date, reason, git_sha, sha256, summary
    dataset: str | None = None
    n: int | None = None

    @property
    def sha256(self) -> str:
        return str(self.checkpoint["sha256"])

    @classmethod
    def read(cls, path: Path) -> Baseline:
        raw = read_json_object(path, "baseline", BenchError)
        if raw.get("baseline_version") != BASELINE_VERSION:
            raise BenchError(f"{path}: not a baseline of version {BASELINE_VERSION}")
        try:
            BASELINE(raw, "")
        except rules.Broken as exc:
            raise BenchError(f"{path}: incomplete baseline ({exc}); restore it from version control or re-bless"
                             ) from None
        return cls(raw["protocol"], raw["threat"], raw["checkpoint"], raw["index_sha256"], raw["flags"],
                   raw["margins"], raw["passes"], raw["history"], raw.get("dataset"), raw.get("n"))

    def to_json(self) -> dict[str, Any]:
        optional = {key: value for key, value in (("dataset", self.dataset), ("n", self.n)) if value is not None}
        return {"baseline_version": BASELINE_VERSION, "protocol": self.protocol, **optional, "threat": self.threat,
                "checkpoint": self.checkpoint, "index_sha256": self.index_sha256, "flags": self.flags,
                "margins": self.margins, "passes": self.passes, "history": self.history}


def compare(target: Target, path: Path, baseline: Baseline, record: RunRecord,
            protocol: GateProtocol) -> TargetComparison:
    verdict = TargetComparison(target, path)
    if baseline.protocol != protocol.as_json():
        verdict.identity.append(f"baseline protocol {baseline.protocol} differs from the gate's "
                                f"{protocol.as_json()}: re-bless")
    if baseline.sha256 != record.model.sha256:
        verdict.identity.append(f"checkpoint changed: sha256 {baseline.sha256[:16]}… in the "
                                f"baseline, {record.model.sha256[:16]}… now")
    blessed = baseline.checkpoint.get("model")
    blessed_spec = blessed.get("spec") if isinstance(blessed, dict) else None
    given_spec = target.model.text if target.model else None
    if blessed_spec != given_spec:
        verdict.identity.append(f"the baseline was blessed for {_model_text(blessed_spec)}, this check gives "
                                f"{_model_text(given_spec)}")
    declared = baseline.checkpoint.get("input")  # baselines blessed before inputs were pinned have none
    if declared is not None and declared != record.model.input:
        verdict.identity.append(f"declared input changed: {declared!r} in the baseline, {record.model.input!r} now")
    if baseline.index_sha256 != record.index_sha256 or baseline.threat != _threat_of(record):
        verdict.identity.append("test points or threat model differ from the baseline's")
        return verdict
    now, margins, passes = _flags_of(record), _margins_of(record), _passes_of(record)
    for name, old in baseline.flags.items():
        new = now.get(name)
        if new is None:
            verdict.identity.append(f"the gate no longer runs {name!r}")
            continue
        measure = Measure(name, len(old), sum(a == "0" and b == "1" for a, b in zip(old, new, strict=True)),
                          sum(a == "1" and b == "0" for a, b in zip(old, new, strict=True)), old.count("1"),
                          new.count("1"))
        if name in baseline.margins:
            measure.margin_changes = _moved(baseline.margins[name], margins[name])
            measure.passes = (baseline.passes[name], passes[name])
        verdict.measures.append(measure)
    return verdict


def _model_text(spec: Any) -> str:
    return f"--model {spec!r}" if spec is not None else "a checkpoint without --model"


def _moved(old: list[float | None], new: list[float | None]) -> int:
    return sum((a is None) != (b is None) or (a is not None and b is not None and abs(a - b) > MARGIN_TOLERANCE)
               for a, b in zip(old, new, strict=True))


def pooled(verdicts: list[TargetComparison]) -> list[tuple[str, int, int, float]]:
    """(measure, to_robust, to_broken, p of the dominant direction) summed over checkpoints."""
    sums: dict[str, list[int]] = {}
    for v in verdicts:
        for m in v.measures:
            pair = sums.setdefault(m.name, [0, 0])
            pair[0] += m.to_robust
            pair[1] += m.to_broken
    return [(name, up, down, sign_test_greater(max(up, down), min(up, down)))
            for name, (up, down) in sorted(sums.items())]


def new_baseline(record: RunRecord, target: Target, protocol: GateProtocol, reason: str,
                 previous: Baseline | None) -> Baseline:
    history = list(previous.history) if previous else []
    history.append({"date": now_iso(), "reason": reason, "git_sha": git_sha(),
                    "sha256": record.model.sha256,
                    "summary": {name: flags.count("1") for name, flags in _flags_of(record).items()}})
    return Baseline(protocol.as_json(), _threat_of(record),
                    {"label": target.label, "path": record.model.path, "sha256": record.model.sha256,
                     "input": record.model.input, **({"model": _spec_entry(target.model)} if target.model else {})},
                    record.index_sha256, _flags_of(record), _margins_of(record), _passes_of(record), history,
                    target.dataset, record.n)


def _spec_entry(spec: ModelSpec) -> dict[str, Any]:
    """What the baseline was blessed for, to match against the `--model` of a later check. Only
    ever compared: a baseline is a file handed to us, and a file never names code to import."""
    return {"spec": spec.text, "weights": str(spec.weights) if spec.weights else None,
            "mean": list(spec.mean) if spec.mean else None, "std": list(spec.std) if spec.std else None,
            "input_range": spec.input_range.value if spec.input_range else None}


def write_baseline(path: Path, baseline: Baseline) -> None:
    atomic_write(path, (json.dumps(baseline.to_json(), indent=1, sort_keys=True) + "\n").encode())


def default_targets(dataset: str, baselines: Path) -> tuple[list[Target], list[str]]:
    """Every committed checkpoint of a registered defense, and every baselined checkpoint file.

    Returns (targets, problems): a baseline whose checkpoint no longer exists is a problem
    named by its file, and does not stop the other checkpoints from being checked.
    """
    targets = {name: Target(name, dataset, defense=name) for name in committed_defenses(dataset)}
    problems = []
    for path in sorted((baselines / dataset).glob("*.json")):
        label = path.stem
        if label in targets:
            continue
        try:
            entry = Baseline.read(path).checkpoint
            if "model" in entry:
                problems.append(f"{path}: baseline {label!r} is for a --model, and the gate imports no code "
                                f"because a file names it: check it with `bench check --model ... --label {label}`")
                continue
            recorded = Path(entry["path"])
        except (BenchError, KeyError, TypeError, ValueError) as exc:
            problems.append(f"{path}: {exc}")
            continue
        if recorded.is_file():
            targets[label] = Target(label, dataset, checkpoint=recorded)
        else:
            problems.append(f"{path}: baseline for {label!r}, but its checkpoint {recorded} does not exist "
                            "(delete the baseline if the checkpoint was retired)")
    return [targets[k] for k in sorted(targets)], problems


def validate_protocol(protocol: GateProtocol, dataset: str) -> None:
    """A bad attack list or dataset is a usage error before anything is evaluated."""
    from bench.attacks import build_attacks
    from bench.data import DATASETS
    from bench.evaluation.committed import attack_context

    build_attacks(protocol.attacks, DATASETS.get(dataset).default_threat().norm, attack_context(dataset))


def requested_targets(dataset: str, baselines: Path, *, defenses: Sequence[str] = (), checkpoints: Sequence[Path] = (),
                      model: ModelSpec | None = None, label: str | None = None, sha256: str | None = None,
                      updating: bool = False) -> tuple[list[Target], list[str]]:
    """The models a gate call names — every committed and baselined one when it names none — with
    (targets, problems) as `default_targets` returns them. Names, files and folders are checked
    first, and a user model is loaded once, so a typo or a model that does not load is a usage
    error (exit 2), never a red gate (exit 1)."""
    from bench.data import DATASETS
    from bench.evaluation.committed import committed_checkpoint
    from bench.evaluation.resolve import resolve
    from bench.files import ensure_writable_dir
    from bench.loading.untrusted import readable_file
    from defenses import DEFENSES

    spec_norm = DATASETS.get(dataset).default_threat().norm.value
    for name in defenses:
        DEFENSES.get(name)
        path = committed_checkpoint(dataset, name)
        if path is None or not path.is_file():
            raise BenchError(f"defense {name!r} has no committed {dataset} checkpoint to check")
    for path in checkpoints:
        readable_file(path, "--checkpoint")
    if label is not None and model is None:
        raise BenchError("--label names a --model's baseline: give --model too")
    targets = [Target(d, dataset, defense=d) for d in defenses] + [Target(c.stem, dataset, checkpoint=c)
                                                                    for c in checkpoints]
    if model is not None:
        loaded = resolve(dataset, spec_norm, model=model, sha256=sha256)
        name = checked_label(label, "--label") if label else checked_label(loaded.label, "the model's name (set one with --label)")
        targets.append(Target(name, dataset, model=model))
    if baselines.exists() and not baselines.is_dir():
        raise BenchError(f"--baselines {baselines} is a file, not a folder")
    if updating:  # gate.update insists on a reason before it evaluates anything
        ensure_writable_dir(baselines / dataset, "--baselines")
    elif not baselines.is_dir():
        raise BenchError(f"no baselines folder at {baselines}: create baselines with "
                         "`bench check --update-baseline --reason ...`")
    return (targets, []) if targets else default_targets(dataset, baselines)


@dataclass
class GateResult:
    verdicts: list[TargetComparison]
    problems: list[str]  # baselines that could not be checked, each naming its file

    @property
    def drift(self) -> list[tuple[str, int, int, float]]:
        return [(name, up, down, p) for name, up, down, p in pooled(self.verdicts) if p < ALPHA and up != down]

    @property
    def failed(self) -> bool:
        return bool(self.problems or self.drift) or any(not v.passed for v in self.verdicts)


def run_gate(targets: list[Target], baselines: Path, protocol: GateProtocol, problems: list[str],
          quiet: bool = True) -> GateResult:
    verdicts = []
    for target in targets:
        path = baseline_path(baselines, target)
        if not path.exists():
            verdict = TargetComparison(target, path, [f"no baseline at {path}: create it with `bench check --update-baseline "
                                             "--reason ...`"])
        else:
            baseline = Baseline.read(path)
            verdict = compare(target, path, baseline, evaluate_target(target, protocol, quiet), protocol)
        verdicts.append(verdict)
    return GateResult(verdicts, problems)


def require_reason(reason: str) -> None:
    if not reason.strip():
        raise BenchError("--update-baseline needs --reason TEXT: say why the numbers may change")


def update(targets: list[Target], baselines: Path, protocol: GateProtocol, reason: str,
           quiet: bool = True) -> list[Path]:
    require_reason(reason)
    written = []
    for target in targets:
        path = baseline_path(baselines, target)
        previous = Baseline.read(path) if path.exists() else None
        record = evaluate_target(target, protocol, quiet)
        write_baseline(path, new_baseline(record, target, protocol, reason, previous))
        written.append(path)
    return written


def format_report(result: GateResult, protocol: GateProtocol, dataset: str) -> str:
    from tabulate import tabulate

    rows = [[v.target.label, m.name, m.baseline_count, m.count, m.to_robust, m.to_broken,
             m.margin_changes if m.passes else "", m.problem() or "ok"]
            for v in result.verdicts for m in v.measures]
    lines = [f"bench check on {dataset}: first {protocol.n} test points, attacks {format_attacks(protocol.attacks)}, seed "
             f"{protocol.seed}; red when a measure has more than {churn_limit(protocol.n)} flips (noise rate "
             f"{NOISE_RATE:.1%}, α={ALPHA}) or as many attack outputs move, when a one-sided sign test on the "
             f"flips has p < {ALPHA}, or an attack's passes per example change by more than {PASS_TOLERANCE:.0%}",
             ""]
    if rows:
        lines += [tabulate(rows, headers=["checkpoint", "measure", "baseline", "now", "→robust", "→broken",
                                          "outputs moved", "verdict"], tablefmt="github"), ""]
    drift = {name for name, *_ in result.drift}
    for name, up, down, _ in pooled(result.verdicts):
        lines.append(f"pooled {name}: {up} →robust, {down} →broken over {len(result.verdicts)} checkpoints: "
                     f"{'RED' if name in drift else 'ok'}")
    red = [v for v in result.verdicts if not v.passed]
    for v in red:
        lines += [f"RED {v.target.label}: {problem}" for problem in v.identity]
        lines += [f"RED {v.target.label} {m.name}: {m.problem()} (robust {m.baseline_count} → {m.count} of {m.n})"
                  for m in v.measures if m.problem()]
    lines += [f"RED {p}" for p in result.problems]
    lines.append(f"{'FAIL' if result.failed else 'PASS'}: {len(result.verdicts)} checkpoints, {len(red)} red"
                 + ("; if the change is intended, re-bless with `bench check --update-baseline --reason ...`"
                    if result.failed else ""))
    return "\n".join(lines)
