"""`bench audit`: can this model's robust accuracy be trusted? Standard vs adaptive attacks, and checks.

The audit (1) probes the model directly — AutoAttack's own checks (randomness, softmax output,
dynamic forward, zero gradients) and ours (input gradients zero, NaN or inf on many points) —
(2) makes sure the standard attacks, the adaptive ones (`--attack adaptive`, plus `eot-pgd` for
an allowed randomized model), the random-noise baseline, an ε ladder up to the unbounded ε and an
attack-strength ladder are recorded for its points, running only what no record covers, (3)
applies the record checks of `bench.auditing.checks` plus the adaptive gap: adaptive attacks may break at
most 1% of the points the standard attacks left robust, and (4) runs the binarization test
(`bench.auditing.binarization`): the iterative attacks must find adversarial examples that provably exist.
The report gives the numbers side by side, per-example agreement, every check, and one verdict
line; the JSON next to it feeds the leaderboard's marks.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench import data
from bench.attacks import Attack, AttackSpec, build_attacks, parse_attacks
from bench.attacks.autoattack import AA_LOGGER, captured_autoattack_log
from bench.attacks.base import ADAPTIVE
from bench.auditing import checks as sanity
from bench.auditing.binarization import PASS_RATE, BinarizationResult, BinarizationSettings, run_binarization
from bench.errors import ModelGuardError, ModelInputError
from bench.evaluation.committed import attack_context
from bench.evaluation.config import STANDARD_ATTACKS, RunConfig
from bench.evaluation.harness import evaluate, under_test
from bench.evaluation.resolve import ResolvedModel, resolve_model
from bench.loading.guards import preflight
from bench.loading.model import ModelUnderTest
from bench.records.certificates import certificates, refuse_contradictions
from bench.records.curves import eps_curves, strength_curves
from bench.records.run_record import RunRecord, load_run_records
from bench.records.schema import RunPurpose
from bench.stats import wilson_interval

Specs = tuple[AttackSpec, ...]
ADAPTIVE_ATTACKS = (AttackSpec(ADAPTIVE),)  # the defense's own + transfer + long Square
BASELINE_ATTACKS = parse_attacks("noise")  # what every attack must beat: random draws of the ε-ball
RANDOMIZED_ATTACK = AttackSpec("eot-pgd")  # joins the adaptive attacks of a randomized model (--allow-randomized)
STRENGTH_LADDER = parse_attacks("pgd:steps=5,pgd,pgd:steps=100,pgd:restarts=3")
BINARIZATION_ATTACKS = parse_attacks("pgd,apgd")  # the standard list's iterative attacks (apgd: AA's first stage)
EPS_LADDER_ATTACKS = parse_attacks("fgsm,pgd")
UNBOUNDED_ATTACKS = parse_attacks("pgd")
EPS_MULTIPLES = (1.0, 2.0, 3.0)  # plus the collapse ε, where every input reaches the same image
PROBE_POINTS = 100
GRADIENT_ALLOWANCE = 0.10  # share of probed points with a zero / non-finite gradient before failing
ADAPTIVE_ALLOWANCE = sanity.SQUARE_ALLOWANCE


class Verdict(str, enum.Enum):
    NOT_EVALUABLE = "not evaluable"
    MASKING = "gradient masking"
    OVERSTATED = "overstated by standard attacks"
    CHECK_FAILED = "check failed"
    CONSISTENT = "no sign of masking"


MASKING_CHECKS = {sanity.Check.GRADIENTS, sanity.Check.BLACK_BOX, sanity.Check.EPS_CURVE, sanity.Check.STRENGTH,
                  sanity.Check.BINARIZATION, sanity.Check.SINGLE_STEP, sanity.Check.NOISE, sanity.Check.UNBOUNDED}


@dataclass(frozen=True)
class AuditConfig:
    run: RunConfig  # model, dataset, threat, points, seed, results folder
    standard: Specs = STANDARD_ATTACKS
    adaptive: Specs = ADAPTIVE_ATTACKS
    baseline: Specs = BASELINE_ATTACKS
    strength: Specs = STRENGTH_LADDER
    audits_dir: Path = Path("results/audits")
    binarization: BinarizationSettings | None = BinarizationSettings()  # None: not run
    binarization_attacks: Specs = BINARIZATION_ATTACKS

    def __post_init__(self) -> None:
        """Every attack list is checked before the first attack runs."""
        context = attack_context(self.run.dataset, self.run.defense_name())
        for specs in (self.standard, self.adaptive, self.baseline, self.strength, self.binarization_attacks):
            build_attacks(specs, self.run.threat.norm, context)


@dataclass
class Audit:
    label: str
    sha256: str
    n: int  # the points audited (a refused audit attacked none of them)
    checks: list[sanity.CheckResult]
    verdict: Verdict
    headline: str
    standard: dict[str, tuple[int, int]]  # label → (robust, n) on the audit points
    adaptive: dict[str, tuple[int, int]]
    worst: dict[str, tuple[int, int]]  # standard, adaptive, audit (all)
    agreement: dict[str, int]
    records: list[str]
    binarization: BinarizationResult | None = None
    baseline: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)  # the noise baseline
    report: Path | None = None  # the markdown report, once written


def _pct(k: int, n: int) -> str:
    return f"{100 * k / n:.1f}%" if n else "n/a"


# ---------------------------------------------------------------- probes on the model itself

def _aa_probe(model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor) -> sanity.CheckResult:
    """AutoAttack's own model checks, run as its code runs them, warnings captured."""
    from pyautoattack import checks

    for key in checks.funcs:  # its call counters are global and never reset between models
        checks.funcs[key] = 0
    logger = logging.getLogger(AA_LOGGER)
    with captured_autoattack_log() as capture:
        checks.check_randomized(model, x, y, logger=logger)
        checks.check_range_output(model, x, logger=logger)
        checks.check_dynamic(model, x, logger=logger)
        x_grad = x.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(x_grad), y)
        grad, = torch.autograd.grad(loss, x_grad)
        checks.check_zero_gradients(grad, logger=logger)
    warned = [r.getMessage().split(" See ")[0] for r in capture.records if r.levelno >= logging.WARNING]
    return sanity.CheckResult(sanity.Check.AUTOATTACK_PROBE, not warned, "; ".join(warned) or "no warnings")


def _gradient_probe(model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor, eps: float) -> sanity.CheckResult:
    """Input gradients of the CE loss at the clean points and at a random point of the ε-ball."""
    gen = torch.Generator(device=x.device).manual_seed(0)
    noisy = (x + (torch.rand(x.shape, generator=gen, device=x.device) * 2 - 1) * eps).clamp(0, 1)
    bad = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for start in (x, noisy):
        z = start.clone().requires_grad_(True)
        per = torch.nn.functional.cross_entropy(model(z).float(), y, reduction="none")
        grad, = torch.autograd.grad(per.sum(), z)
        flat = grad.flatten(1)
        bad |= ~torch.isfinite(flat).all(1) | (flat.abs().sum(1) == 0)
    k, n = int(bad.sum()), x.shape[0]
    detail = f"{k} of {n} points have a zero, NaN or infinite input gradient (clean or ε-ball start)"
    return sanity.CheckResult(sanity.Check.GRADIENTS, k <= GRADIENT_ALLOWANCE * n, detail)


@dataclass(frozen=True)
class Probed:
    checks: list[sanity.CheckResult]
    refused: str | None  # why the model cannot be evaluated, or None
    randomized: bool  # two identical forwards differ, and the audit was allowed to go on


def probe(resolved: ResolvedModel, cfg: RunConfig, x: torch.Tensor, y: torch.Tensor) -> Probed:
    """The model probes. A model that cannot run on the dataset's inputs is the user's input error
    (ModelInputError), raised as in `bench run`; a randomized one is refused unless
    `cfg.allow_randomized`."""
    spec = data.DATASETS.get(cfg.dataset)
    model = under_test(resolved, spec.num_classes, cfg.torch_device())
    x, y = x.to(model.device), y.to(model.device)
    with model.attack_mode():
        try:
            preflight(model, x, allow_randomized=cfg.allow_randomized)
            refused = None
        except ModelInputError:
            raise
        except ModelGuardError as exc:  # probabilities, randomness, NaN: the probes say more
            refused = str(exc)
        results = [_aa_probe(model, x, y), _gradient_probe(model, x, y, cfg.threat.eps)]
    return Probed(results, refused, model.randomized)


def binarization_check(resolved: ResolvedModel, cfg: AuditConfig, x: torch.Tensor, y: torch.Tensor,
                       indices: list[int], randomized: bool
                       ) -> tuple[BinarizationResult | None, sanity.CheckResult | None]:
    """The binarization test on the audit points the model classifies correctly; a check only
    where the construction applies."""
    if cfg.binarization is None:
        return None, None
    if randomized:
        return BinarizationResult(False, "the model is randomized: its features differ between identical "
                                  "forwards, so no fixed readout separates them", cfg.binarization), None
    run = cfg.run
    model = under_test(resolved, data.DATASETS.get(run.dataset).num_classes, run.torch_device())
    attacks = build_attacks(cfg.binarization_attacks, run.threat.norm, attack_context(run.dataset, run.defense_name()))
    correct = model.predict(x) == y
    keep = [i for i, ok in zip(indices, correct.tolist(), strict=True) if ok]
    result = run_binarization(model, x[correct], keep, run.threat, attacks, cfg.binarization, run.seed)
    if not result.applicable:
        return result, None
    rates = "; ".join(f"{a.label} passed {a.passed} of {a.tasks} tasks" for a in result.attacks)
    detail = (f"{rates} (fails below {100 * PASS_RATE:.0f}% with 95% confidence); random draws found the "
              f"boundary class on {result.random_baseline}; construction failed on {len(result.construction_failed)}")
    return result, sanity.CheckResult(sanity.Check.BINARIZATION, result.passed, detail)


# ---------------------------------------------------------------- runs: reuse what is recorded

def _covering(records: list[RunRecord], sha: str, cfg: RunConfig, indices: set[int],
              attack: Attack) -> RunRecord | None:
    """The newest record of this attack (same protocol, threat, seed) on a superset of the points."""
    best = None
    for r in records:
        res = r.attacks.get(attack.label)
        if (r.model.sha256 != sha or res is None or not r.has_per_attack_flags or res.protocol != attack.protocol
                or r.threat != cfg.threat or r.seed != cfg.seed or not indices <= set(r.index.tolist())):
            continue
        if best is None or r.order > best.order:
            best = r
    return best


def _records(cfg: RunConfig) -> list[RunRecord]:
    return load_run_records(cfg.results_dir) if cfg.results_dir.is_dir() else []


def ensure_recorded(cfg: RunConfig, sha: str, indices: set[int]) -> sanity.Chosen:
    """Attack label → a record covering the points; runs the attacks no record covers."""
    records = _records(cfg)
    attacks = cfg.attacks()
    chosen = {a.label: r for a in attacks if (r := _covering(records, sha, cfg, indices, a)) is not None}
    missing = [a for a in attacks if a.label not in chosen]
    if missing:
        result = evaluate(dataclasses.replace(cfg, attack_specs=tuple(a.spec for a in missing), resume=None))
        assert result.record_path is not None, "the audit runs in one process"
        chosen.update({a.label: result.record for a in missing})
    return {a.label: chosen[a.label] for a in attacks}


def _ladders(cfg: RunConfig, strength: Specs, sha: str, indices: set[int], spec: data.DatasetSpec
             ) -> list[RunRecord]:
    """ε and strength ladders, run on the audit points only when none is recorded for the model."""
    records = [r for r in _records(cfg) if r.model.sha256 == sha]
    norm = cfg.threat.norm.value
    if not eps_curves(records, norm):
        top = sanity.collapse_eps(norm, math.prod(spec.shape))
        for eps in sorted({min(m * cfg.threat.eps, top) for m in EPS_MULTIPLES} | {top}):
            if eps != cfg.threat.eps:
                threat = dataclasses.replace(cfg.threat, eps=eps)
                ensure_recorded(dataclasses.replace(cfg, threat=threat, attack_specs=EPS_LADDER_ATTACKS,
                                                    purpose=RunPurpose.EPS_SWEEP), sha, indices)
    if not strength_curves(records, norm, cfg.threat.eps):
        ensure_recorded(dataclasses.replace(cfg, attack_specs=strength), sha, indices)
    top = sanity.unbounded_eps(norm, math.prod(spec.shape))
    if not any(r.threat.norm.value == norm and r.threat.eps >= top * (1 - 1e-9) for r in records):
        threat = dataclasses.replace(cfg.threat, eps=top)  # attacks must reach 100% where any image is reachable
        ensure_recorded(dataclasses.replace(cfg, threat=threat, attack_specs=UNBOUNDED_ATTACKS,
                                            purpose=RunPurpose.EPS_SWEEP), sha, indices)
    return [r for r in _records(cfg) if r.model.sha256 == sha]


# ---------------------------------------------------------------- per-example comparison

def _flags(chosen: sanity.Chosen, indices: list[int]) -> dict[str, np.ndarray]:
    by_label = {label: r.flags_by_index(label) for label, r in chosen.items()}  # one lookup table per attack
    return {label: np.array([flags[i] for i in indices]) for label, flags in by_label.items()}


def _clean(chosen: sanity.Chosen, indices: list[int]) -> np.ndarray:
    r = next(iter(chosen.values()))
    clean = r.by_index(r.clean_correct)
    return np.array([clean[i] for i in indices])


def _adaptive_gap(standard_worst: np.ndarray, adaptive_worst: np.ndarray) -> sanity.CheckResult:
    survivors = int(standard_worst.sum())
    beaten = int((standard_worst & ~adaptive_worst).sum())
    if survivors == 0:
        return sanity.CheckResult(sanity.Check.ADAPTIVE, True, "no point survived the standard attacks")
    low = wilson_interval(beaten, survivors)[0]
    detail = f"adaptive attacks broke {beaten} of {survivors} points the standard attacks left robust"
    return sanity.CheckResult(sanity.Check.ADAPTIVE, low <= ADAPTIVE_ALLOWANCE, detail)


def _verdict(checks: list[sanity.CheckResult], refused: str | None, worst: dict[str, tuple[int, int]]
             ) -> tuple[Verdict, str]:
    failed = {c.check for c in checks if not c.passed}
    if refused is not None:
        return Verdict.NOT_EVALUABLE, refused
    std, audit = worst["standard"], worst["audit"]
    numbers = f"standard attacks {_pct(*std)}, audit worst case {_pct(*audit)} (n={audit[1]})"
    if failed & MASKING_CHECKS:
        return Verdict.MASKING, f"{numbers}; failed: {', '.join(sorted(c.value for c in failed))}"
    if sanity.Check.ADAPTIVE in failed:
        return Verdict.OVERSTATED, numbers
    if failed:
        return Verdict.CHECK_FAILED, f"{numbers}; failed: {', '.join(sorted(c.value for c in failed))}"
    return Verdict.CONSISTENT, numbers


def run_audit(cfg: AuditConfig) -> Audit:
    base = cfg.run
    resolved = resolve_model(base)
    spec = data.DATASETS.get(base.dataset)
    test = data.load(base.dataset, data.Split.TEST, base.data_dir)
    index_array = data.select_indices(len(test), base.n, base.sample_seed)
    indices = [int(i) for i in index_array]
    x, y = test.batch(index_array[:PROBE_POINTS])
    probed = probe(resolved, base, x, y)
    checks = probed.checks
    empty = {"standard": (0, 0), "adaptive": (0, 0), "audit": (0, 0)}
    if probed.refused is not None:
        verdict, headline = _verdict(checks, probed.refused, empty)
        return Audit(resolved.label, resolved.sha256, len(indices), checks, verdict, headline, {}, {}, empty, {}, [])
    warnings = tuple(f"audit: {c.check.label}: {c.detail}" for c in checks if not c.passed)
    run = dataclasses.replace(base, extra_warnings=warnings)
    wanted = set(indices)
    standard = ensure_recorded(dataclasses.replace(run, attack_specs=cfg.standard), resolved.sha256, wanted)
    adaptive_specs = cfg.adaptive + ((RANDOMIZED_ATTACK,) if probed.randomized
                                     and RANDOMIZED_ATTACK.name not in {s.name for s in cfg.adaptive} else ())
    adaptive = ensure_recorded(dataclasses.replace(run, attack_specs=adaptive_specs), resolved.sha256, wanted)
    baseline = ensure_recorded(dataclasses.replace(run, attack_specs=cfg.baseline), resolved.sha256, wanted)
    history = _ladders(run, cfg.strength, resolved.sha256, wanted, spec)
    clean = _clean(standard, indices)
    std_flags, ada_flags, base_flags = _flags(standard, indices), _flags(adaptive, indices), _flags(baseline, indices)
    std_worst = np.logical_and.reduce([clean, *std_flags.values()])
    ada_worst = np.logical_and.reduce([clean, *ada_flags.values()])
    all_worst = np.logical_and.reduce([std_worst, ada_worst, *base_flags.values()])
    n = len(indices)
    chosen = {**standard, **adaptive, **baseline}
    certified = [r for r in _records(run) if r.model.sha256 == resolved.sha256 and r.threat == base.threat]
    refuse_contradictions(certificates(certified), {label: r.flags_by_index(label) for label, r in chosen.items()},
                          resolved.label)
    record_checks = sanity.record_checks(history, chosen, base.threat.norm.value, base.threat.eps,
                                         math.prod(spec.shape))
    binarized, binarization = binarization_check(resolved, cfg, *test.batch(index_array), indices, probed.randomized)
    checks = checks + record_checks + [_adaptive_gap(std_worst, ada_worst)] + ([binarization] if binarization else [])
    worst = {"standard": (int(std_worst.sum()), n), "adaptive": (int(ada_worst.sum()), n),
             "audit": (int(all_worst.sum()), n)}
    verdict, headline = _verdict(checks, None, worst)
    agreement = {"robust under both": int((std_worst & ada_worst).sum()),
                 "broken only by adaptive": int((std_worst & ~ada_worst).sum()),
                 "broken only by standard": int((~std_worst & ada_worst & clean).sum()),
                 "broken by both": int((~std_worst & ~ada_worst & clean).sum()),
                 "clean misclassified": int((~clean).sum())}
    files = sorted({r.file for r in chosen.values() if r.file})
    return Audit(resolved.label, resolved.sha256, n, checks, verdict, headline,
                 {k: (int(v.sum()), n) for k, v in std_flags.items()},
                 {k: (int(v.sum()), n) for k, v in ada_flags.items()}, worst, agreement, files, binarized,
                 {k: (int(v.sum()), n) for k, v in base_flags.items()})
