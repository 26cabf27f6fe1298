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

Baselines are JSON files under <folder>/<dataset>/<label>.json (the project's own in
results/baselines), re-blessed only by `bench check --update-baseline --reason TEXT`, which appends
to their history. Each baseline keeps the protocol it was blessed under, and a check runs exactly
that protocol unless the caller asks for another (which is then red: re-bless to change it).
Without named models a check gates exactly the baselines in the folder; the project's folder must
also hold one for every committed checkpoint.
"""

from __future__ import annotations

import json
import shlex
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.attacks.specs import AttackSpec, format_attacks, parse_attacks
from bench.errors import BenchError
from bench.evaluation.committed import committed_checkpoint, committed_defenses
from bench.evaluation.config import RunConfig
from bench.evaluation.harness import evaluate
from bench.files import atomic_write, checked_label, read_json_object
from bench.loading.sources import ModelSpec
from bench.provenance import git_sha, now_iso
from bench.records import rules
from bench.records.run_record import RunRecord, flag_text
from bench.records.schema import REPO_ROOT, WORST_CASE
from bench.stats import binomial_quantile, sign_test_greater
from defenses import DEFENSES

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

    @classmethod
    def of(cls, raw: dict[str, Any]) -> GateProtocol:
        """A baseline's stored protocol (already checked by `BASELINE`); its attack text is parsed here."""
        return cls(n=raw["n"], attacks=parse_attacks(raw["attacks"]), seed=raw["seed"], batch_size=raw["batch_size"])

    def __str__(self) -> str:
        return f"first {self.n} test points, attacks {format_attacks(self.attacks)}, seed {self.seed}"


@dataclass(frozen=True)
class ProtocolChoice:
    """What a gate call asks for; a field left None is each baseline's own (the default for a new one)."""

    n: int | None = None
    attacks: tuple[AttackSpec, ...] | None = None
    seed: int | None = None

    def over(self, base: GateProtocol) -> GateProtocol:
        return replace(base, n=base.n if self.n is None else self.n, seed=base.seed if self.seed is None else self.seed,
                       attacks=base.attacks if self.attacks is None else self.attacks)


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
    protocol: GateProtocol | None  # what ran (None: nothing could be compared)
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
    "baseline_version": rules.integer(lo=1),
    "protocol": rules.Obj({"n": rules.integer(lo=1), "attacks": rules.string(), "seed": rules.integer(lo=0),
                           "batch_size": rules.integer(lo=1)}),
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

    protocol: GateProtocol  # what it was blessed under
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
            protocol = GateProtocol.of(raw["protocol"])
        except rules.Broken as exc:
            raise BenchError(f"{path}: incomplete baseline ({exc}); restore it from version control or re-bless"
                             ) from None
        except BenchError as exc:
            raise BenchError(f"{path}: its protocol's attacks do not parse ({exc})") from None
        return cls(protocol, raw["threat"], raw["checkpoint"], raw["index_sha256"], raw["flags"],
                   raw["margins"], raw["passes"], raw["history"], raw.get("dataset"), raw.get("n"))

    def to_json(self) -> dict[str, Any]:
        optional = {key: value for key, value in (("dataset", self.dataset), ("n", self.n)) if value is not None}
        return {"baseline_version": BASELINE_VERSION, "protocol": self.protocol.as_json(), **optional, "threat": self.threat,
                "checkpoint": self.checkpoint, "index_sha256": self.index_sha256, "flags": self.flags,
                "margins": self.margins, "passes": self.passes, "history": self.history}


def compare(target: Target, path: Path, baseline: Baseline, record: RunRecord) -> TargetComparison:
    protocol = baseline.protocol
    verdict = TargetComparison(target, path, protocol)
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
    return Baseline(protocol, _threat_of(record),
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


COMMITTED_BASELINES = REPO_ROOT / "results" / "baselines"  # the project's own folder


def is_committed_folder(baselines: Path) -> bool:
    return baselines.resolve() == COMMITTED_BASELINES.resolve()


def default_targets(dataset: str, baselines: Path) -> tuple[list[Target], list[str]]:
    """Exactly the baselines in the folder — and, in the project's own folder, every committed checkpoint,
    so one without a baseline is red.

    Returns (targets, problems): a baseline whose checkpoint no longer exists is a problem
    named by its file, and does not stop the other checkpoints from being checked.
    """
    targets = ({name: Target(name, dataset, defense=name) for name in committed_defenses(dataset)}
               if is_committed_folder(baselines) else {})
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
        committed = committed_checkpoint(dataset, label) if label in DEFENSES else None
        if committed is not None and recorded.resolve() == committed.resolve():
            targets[label] = Target(label, dataset, defense=label)
        elif recorded.is_file():
            targets[label] = Target(label, dataset, checkpoint=recorded)
        else:
            problems.append(f"{path}: baseline for {label!r}, but its checkpoint {recorded} does not exist "
                            "(delete the baseline if the checkpoint was retired)")
    return [targets[k] for k in sorted(targets)], problems


def validate_protocol(protocol: GateProtocol, dataset: str, where: str = "") -> None:
    """A bad attack list or dataset is a usage error before anything is evaluated."""
    from bench.attacks import build_attacks
    from bench.data import DATASETS
    from bench.evaluation.committed import attack_context

    try:
        build_attacks(protocol.attacks, DATASETS.get(dataset).default_threat().norm, attack_context(dataset))
    except BenchError as exc:
        raise BenchError(f"{where}: its protocol's attacks: {exc}" if where else str(exc)) from None


def requested_targets(dataset: str, baselines: Path, *, defenses: Sequence[str] = (), checkpoints: Sequence[Path] = (),
                      model: ModelSpec | None = None, label: str | None = None, sha256: str | None = None,
                      updating: bool = False) -> tuple[list[Target], list[str]]:
    """The models a gate call names — `default_targets` when it names none — with
    (targets, problems) as `default_targets` returns them. Names, files and folders are checked
    first, and a user model is loaded once, so a typo or a model that does not load is a usage
    error (exit 2), never a red gate (exit 1)."""
    from bench.data import DATASETS
    from bench.evaluation.resolve import resolve
    from bench.files import ensure_writable_dir
    from bench.loading.untrusted import readable_file

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
    baselines: Path = COMMITTED_BASELINES

    @property
    def drift(self) -> list[tuple[str, int, int, float]]:
        return [(name, up, down, p) for name, up, down, p in pooled(self.verdicts) if p < ALPHA and up != down]

    @property
    def failed(self) -> bool:
        return bool(self.problems or self.drift) or any(not v.passed for v in self.verdicts)


def run_gate(targets: list[Target], baselines: Path, choice: ProtocolChoice, problems: list[str],
             quiet: bool = True) -> GateResult:
    """Each target under its baseline's own protocol. Every baseline is read and its protocol
    checked before anything is evaluated, so a bad file costs no evaluation."""
    planned = []
    for target in targets:
        path = baseline_path(baselines, target)
        baseline = Baseline.read(path) if path.exists() else None
        if baseline is not None:
            validate_protocol(baseline.protocol, target.dataset, where=str(path))
        planned.append((target, path, baseline))
    verdicts = []
    for target, path, baseline in planned:
        if baseline is None:
            verdict = TargetComparison(target, path, None, [f"no baseline at {path}: create it with "
                                                            f"{rebless_command(target, baselines)}"])
        elif (asked := choice.over(baseline.protocol)) != baseline.protocol:
            verdict = TargetComparison(target, path, None, [
                f"this check asks for {asked}; the baseline was blessed under {baseline.protocol}: to gate under "
                f"another protocol, re-bless with {rebless_command(target, baselines)} and the options"])
        else:
            verdict = compare(target, path, baseline, evaluate_target(target, baseline.protocol, quiet))
        verdicts.append(verdict)
    return GateResult(verdicts, problems, baselines)


def rebless_command(target: Target, baselines: Path) -> str:
    """The command that re-blesses exactly this target's baseline."""
    if target.defense is not None:
        named = f"--defense {target.defense}"
    elif target.checkpoint is not None:
        named = f"--checkpoint {shlex.quote(str(target.checkpoint))}"
    else:
        named = f"--model ... --label {target.label}"
    folder = "" if is_committed_folder(baselines) else f" --baselines {shlex.quote(str(baselines))}"
    return f"`bench check {named}{folder} --update-baseline --reason ...`"


def require_reason(reason: str) -> None:
    if not reason.strip():
        raise BenchError("--update-baseline needs --reason TEXT: say why the numbers may change")


def update(targets: list[Target], baselines: Path, choice: ProtocolChoice, reason: str,
           quiet: bool = True) -> list[Path]:
    """Re-bless exactly `targets`: each under the protocol asked for, else its previous baseline's, else the default."""
    require_reason(reason)
    planned = []
    for target in targets:
        path = baseline_path(baselines, target)
        previous = Baseline.read(path) if path.exists() else None
        protocol = choice.over(previous.protocol if previous else GateProtocol())
        validate_protocol(protocol, target.dataset)
        planned.append((target, path, previous, protocol))
    written = []
    for target, path, previous, protocol in planned:
        record = evaluate_target(target, protocol, quiet)
        write_baseline(path, new_baseline(record, target, protocol, reason, previous))
        written.append(path)
    return written


def format_report(result: GateResult, dataset: str) -> str:
    from tabulate import tabulate

    rows = [[v.target.label, m.name, m.baseline_count, m.count, m.to_robust, m.to_broken,
             m.margin_changes if m.passes else "", m.problem() or "ok"]
            for v in result.verdicts for m in v.measures]
    protocols = sorted({str(v.protocol) for v in result.verdicts if v.protocol is not None})
    ran = protocols[0] if len(protocols) == 1 else "each baseline's own protocol" if protocols else "nothing run"
    lines = [f"bench check on {dataset}: {ran}; red when a measure has more flips than noise allows (noise rate "
             f"{NOISE_RATE:.1%}, α={ALPHA}) or as many attack outputs move, when a "
             f"one-sided sign test on the flips has p < {ALPHA}, or an attack's passes per example change by "
             f"more than {PASS_TOLERANCE:.0%}", ""]
    if len(protocols) > 1:
        lines[1:1] = [f"  {v.target.label}: {v.protocol}" for v in result.verdicts if v.protocol is not None]
    if rows:
        lines += [tabulate(rows, headers=["checkpoint", "measure", "baseline", "now", "→robust", "→broken",
                                          "outputs moved", "verdict"], tablefmt="github"), ""]
    drift = {name for name, *_ in result.drift}
    compared = sum(v.protocol is not None for v in result.verdicts)
    for name, up, down, p in pooled(result.verdicts):
        lines.append(f"{name} summed over {compared} checkpoints (a drift too small for any one of them): {up} "
                     f"→robust, {down} →broken, sign test p={min(p, 1.0):.2g}: "
                     f"{'RED' if name in drift else 'no shared drift'}")
    red = [v for v in result.verdicts if not v.passed]
    for v in red:
        lines += [f"RED {v.target.label}: {problem}" for problem in v.identity]
        lines += [f"RED {v.target.label} {m.name}: {m.problem()} (robust {m.baseline_count} → {m.count} of {m.n})"
                  for m in v.measures if m.problem()]
    lines += [f"RED {p}" for p in result.problems]
    lines.append(f"{'FAIL' if result.failed else 'PASS'}: {len(result.verdicts)} checkpoints, {len(red)} red"
                 + (f", {len(result.problems)} baselines not checked" if result.problems else ""))
    if red:
        lines.append("if a change is intended, re-bless only what it changed: "
                     + "; ".join(rebless_command(v.target, result.baselines) for v in red))
    return "\n".join(lines)
