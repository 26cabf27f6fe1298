"""The Python API: what `bench run`, `bench audit` and `bench leaderboard` do, as calls.

    import bench
    result = bench.evaluate("pgd-at", attacks=["fgsm", "pgd"], n=100)
    print(result)          # clean, each attack and the worst case, with 95% intervals
    result.per_example     # a DataFrame, one row per test point

A model is an `nn.Module` taking [0, 1] pixels, what `bench.load` returned, or a spec as the CLI
takes it: a registered defense (its committed checkpoint), a `bench train` checkpoint, a user model
(`robustbench:NAME`, `package.module:factory` with `weights=`, a model file). Files are loaded
without running their code unless `trust_checkpoint=True`. Nothing is written unless `save=True`;
the same harness runs underneath, so every success is verified in fp32 and an attack's outcome on a
point is the CLI's for the same seed.
"""

from __future__ import annotations

import dataclasses
import inspect as introspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tabulate import tabulate
from torch import nn

from bench import gate
from bench.attacks import AttackSpec, format_attacks, parse_attacks
from bench.attacks.base import ADAPTIVE
from bench.auditing.runner import Audit, AuditConfig, run_audit
from bench.cluster.options import ExecutorKind, JobOptions  # noqa: F401 (bench.ExecutorKind)
from bench.cluster.status import Cell
from bench.cluster.submit import JobView
from bench.data import DATASETS
from bench.errors import BenchError, did_you_mean
from bench.evaluation import harness
from bench.evaluation.config import RANDOMIZED_DRAWS, STANDARD_ATTACKS, RunConfig
from bench.evaluation.harness import RunResult, evaluate_on
from bench.evaluation.inspection import Inspection
from bench.evaluation.resolve import ResolvedModel, in_process, name_model, resolve
from bench.files import checked_label, ensure_writable_dir
from bench.gate import GateProtocol, GateResult, ProtocolChoice, requested_targets, validate_protocol
from bench.loading.model import Precision, Speed
from bench.loading.sources import ModelSpec, spec_with_options
from bench.records.adversarials import AdversarialStore
from bench.records.run_record import RunRecord
from bench.records.schema import WORST_CASE, RunPurpose
from bench.reporting.derived import Derived, derived_root, rebuild
from bench.stats import Proportion
from bench.threat import Norm, ThreatModel, parse_eps
from bench.verifier.runner import TIME_LIMIT as CERTIFY_TIME_LIMIT
from bench.verifier.runner import Method

Model = str | Path | nn.Module | ResolvedModel
Points = tuple[torch.Tensor, torch.Tensor]
DEFAULT_ATTACKS = format_attacks(STANDARD_ATTACKS)
TENSORS = "tensors"  # the dataset name recorded for points handed over as tensors


Estimate = Proportion  # k of n points with the Wilson 95% interval (`low`, `high`), as records and boards use


@dataclass(frozen=True)
class Evaluation:
    """One evaluation: accuracies, per-example outcomes, and the run record (written only on save)."""

    model: str
    sha256: str
    dataset: str
    threat: ThreatModel
    clean: Estimate
    robust: dict[str, Estimate]  # attack label → robust accuracy, in the order the attacks were given
    worst_case: Estimate  # robust under every attack
    per_example: pd.DataFrame  # index: test-set index; label, clean_correct, one column per attack, worst_case
    record: RunRecord  # typed (bench.records.run_record); the JSON is the file at record_path
    record_path: Path | None
    adversarials: AdversarialStore | None = None  # with save_adversarials: the worst case's examples

    @property
    def n(self) -> int:
        return self.clean.n

    def __str__(self) -> str:
        rows = [["clean", str(self.clean)], *([label, str(e)] for label, e in self.robust.items()),
                [WORST_CASE, str(self.worst_case)]]
        head = (f"{self.model} on {self.dataset}, {self.threat.norm.value} ε={self.threat.eps:g}, "
                f"n={self.n}" + (f"; record {self.record_path}" if self.record_path else ""))
        return head + "\n" + tabulate(rows, headers=["", "accuracy [95% CI]"], tablefmt="github")


def _evaluation(result: RunResult) -> Evaluation:
    r = result.record
    frame = pd.DataFrame({"label": r.labels, "clean_correct": r.clean_correct}, index=pd.Index(r.index, name="index"))
    for label, attack in r.attacks.items():
        frame[label] = attack.flags
    frame[WORST_CASE] = r.worst_flags
    frame["broken_first_by"] = pd.Series(r.broken_first_by, index=frame.index, dtype=object)  # None: not broken
    return Evaluation(r.model.label, r.model.sha256, r.dataset, r.threat, r.clean,
                      {label: a.robust for label, a in r.attacks.items()}, r.worst_case,
                      frame, result.record, result.record_path, result.adversarials)


# ------------------------------------------------------------------ models

def load(model: Model, *, dataset: str = "fashion-mnist", norm: str | None = None, weights: Path | str | None = None,
         sha256: str | None = None, trust_checkpoint: bool = False, mean: Sequence[float] | None = None,
         std: Sequence[float] | None = None, input_range: str | None = None,
         model_dir: Path | str | None = None, label: str | None = None) -> ResolvedModel:
    """The model and what we know about it (label, sha256, sidecar, declared input). `norm`
    picks the RobustBench zoo's threat folder; the qualifiers are the CLI's model flags; `label`
    names it in records and on the board (`--label`)."""
    resolved = _load(model, dataset, norm, weights, sha256, trust_checkpoint, mean, std, input_range, model_dir)
    return dataclasses.replace(resolved, label=checked_label(label, "label")) if label else resolved


def _load(model: Model, dataset: str, norm: str | None, weights: Path | str | None, sha256: str | None,
          trust_checkpoint: bool, mean: Sequence[float] | None, std: Sequence[float] | None,
          input_range: str | None, model_dir: Path | str | None) -> ResolvedModel:
    if isinstance(model, ResolvedModel):
        return model
    if isinstance(model, nn.Module):
        return in_process(model, dataset)
    spec_dataset = DATASETS.get(dataset)
    named = name_model(str(model))
    qualifiers = {"weights": weights, "trust_checkpoint": trust_checkpoint or None, "mean": mean, "std": std,
                  "input_range": input_range, "model_dir": model_dir}
    spec = None
    if named.model is not None:
        spec = spec_with_options(named.model, qualifiers)
    else:
        _refuse_stray_qualifiers(qualifiers)
    threat_norm = Norm.parse(norm) if norm else spec_dataset.default_threat().norm
    return resolve(dataset, threat_norm.value, defense=named.defense, checkpoint=named.checkpoint, model=spec,
                   sha256=sha256)


def _refuse_stray_qualifiers(qualifiers: dict[str, Any]) -> None:
    given = [k for k, v in qualifiers.items() if v is not None]
    if given:
        raise BenchError(f"{', '.join(given)} only apply to a user model spec (robustbench:NAME, "
                         "package.module:factory, a model file)")


def _threat(dataset: str, x: torch.Tensor | None, norm: str | None, eps: float | str | None) -> ThreatModel:
    eps_text = None if eps is None else str(eps)
    if x is None:
        return RunConfig.resolve_threat(dataset, norm, eps_text)
    if eps_text is None:
        raise BenchError("points given as tensors have no default threat model: give eps (and norm, default linf)")
    threat = ThreatModel(Norm.parse(norm or "linf"), parse_eps(eps_text))
    threat.check_fits(int(np.prod(x.shape[1:])))
    return threat


def _points(data: Points) -> Points:
    x, y = data
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        raise BenchError("points must be a pair of tensors (x, y)")
    if x.ndim != 4 or not x.is_floating_point():
        raise BenchError(f"x must be float images [n, channels, height, width] in [0, 1], got {tuple(x.shape)} "
                         f"{x.dtype}")
    if y.ndim != 1 or y.shape[0] != x.shape[0] or y.is_floating_point():
        raise BenchError(f"y must be integer labels [n] for the {x.shape[0]} images, got {tuple(y.shape)} {y.dtype}")
    return x.detach().float().cpu(), y.detach().long().cpu()


def _classes(resolved: ResolvedModel, x: torch.Tensor) -> int:
    """The number of logits the model gives (points handed over as tensors name no dataset)."""
    module = resolved.module
    training = module.training
    module.eval()  # a forward pass in training mode would move batch-norm statistics
    try:
        with torch.no_grad():
            first = next(iter(module.parameters()), None)
            return int(module(x[:1].to(first.device if first is not None else x.device)).shape[1])
    finally:
        module.train(training)


def _attack_specs(attacks: str | Sequence[str]) -> tuple[AttackSpec, ...]:
    """The attacks as the caller wrote them ("fgsm,pgd:steps=50" or ["fgsm", "pgd:steps=50"]), parsed."""
    if isinstance(attacks, str):
        return parse_attacks(attacks)
    return tuple(spec for text in attacks for spec in parse_attacks(text))


# ------------------------------------------------------------------ evaluation

def evaluate(model: Model, *, dataset: str | Points = "fashion-mnist",
             attacks: str | Sequence[str] = DEFAULT_ATTACKS, n: int | None = None,
             eps: float | str | None = None, norm: str | None = None, seed: int = 0,
             sample_seed: int | None = None, device: str | None = None, batch_size: int = 500,
             save: bool = False, results_dir: Path | str = Path("results/runs"), data_dir: Path | str | None = None,
             cascade: bool = False, allow_randomized: bool = False, draws: int = RANDOMIZED_DRAWS,
             precision: str = "fp32", channels_last: bool = False, compile: bool = False,
             save_adversarials: bool = False, resume: bool = False, quiet: bool = True,
             certify: str | Sequence[str] = (), certify_time_limit: float = CERTIFY_TIME_LIMIT,
             **model_options: Any) -> Evaluation:
    """`bench run` as a call. `dataset` names a dataset (its test split, the first `n` points or
    `n` drawn with `sample_seed`), or is a pair of tensors `(x, y)` with `eps` given; then `model`
    must be a module or what `bench.load` returned, and nothing can be saved (records are of
    test-split points). `save_adversarials` keeps the worst case's adversarial examples
    (`Evaluation.adversarials`; with `save`, also a .pt beside the record); `resume` continues a
    saved run interrupted with the same settings (needs `save`). `precision`, `channels_last`,
    `compile` and `draws` are `bench run`'s flags of those names. `certify` ("ibp,crown" or a list;
    `milp` with `certify_time_limit` seconds per point) also bounds each point from below: the record
    then holds certified flags beside the attacks'. `model_options` go to `bench.load` (weights,
    sha256, trust_checkpoint, ...)."""
    purpose = RunPurpose.CASCADE if cascade else RunPurpose.EVALUATION
    return _evaluation(_run(model, dataset, _attack_specs(attacks), purpose, _Options(
        n=n, eps=eps, norm=norm, seed=seed, sample_seed=sample_seed, device=device, batch_size=batch_size,
        save=save, results_dir=Path(results_dir), data_dir=data_dir, allow_randomized=allow_randomized,
        draws=draws, speed=_speed(precision, channels_last, compile), keep_adversarials=save_adversarials,
        resume=resume, quiet=quiet, certify=Method.parse_list(certify) if certify else (),
        certify_time_limit=certify_time_limit), model_options))


def certify(model: Model, *, methods: str | Sequence[str] = "ibp,crown", attacks: str | Sequence[str] = "pgd",
            time_limit: float = CERTIFY_TIME_LIMIT, **options: Any) -> Evaluation:
    """`bench certify` as a call: certified flags per point by `methods` (ibp, crown; milp decides exactly,
    `time_limit` seconds per point), checked by `attacks` on the same points — a certified point they
    break stops the run before anything is saved. `options` are `evaluate`'s (dataset, n, eps, save, …);
    the result's record holds the certificates (`Evaluation.record.certified`)."""
    return evaluate(model, attacks=attacks, certify=[m.value for m in Method.parse_list(methods)],
                    certify_time_limit=time_limit, **options)


def eps_sweep(model: Model, eps: Sequence[float | str], *, dataset: str | Points = "fashion-mnist",
              attacks: str | Sequence[str] = DEFAULT_ATTACKS, n: int | None = None, norm: str | None = None,
              seed: int = 0, sample_seed: int | None = None, device: str | None = None, batch_size: int = 500,
              save: bool = False, results_dir: Path | str = Path("results/runs"),
              data_dir: Path | str | None = None, allow_randomized: bool = False, draws: int = RANDOMIZED_DRAWS,
              precision: str = "fp32", channels_last: bool = False, compile: bool = False, quiet: bool = True,
              **model_options: Any) -> list[Evaluation]:
    """`bench run --eps-sweep`: one evaluation per ε, in the order given, recorded as eps-sweep
    runs (they feed the ε-curve plots and checks, not the leaderboard's tables)."""
    if not eps:
        raise BenchError("eps_sweep needs at least one ε")
    specs = _attack_specs(attacks)
    once = load(model, dataset=dataset, norm=norm, **model_options) if isinstance(dataset, str) else model
    return [_evaluation(_run(once, dataset, specs, RunPurpose.EPS_SWEEP, _Options(
        n=n, eps=e, norm=norm, seed=seed, sample_seed=sample_seed, device=device, batch_size=batch_size, save=save,
        results_dir=Path(results_dir), data_dir=data_dir, allow_randomized=allow_randomized, draws=draws,
        speed=_speed(precision, channels_last, compile), quiet=quiet),
        {} if isinstance(dataset, str) else model_options)) for e in eps]


def _speed(precision: str, channels_last: bool, compile: bool) -> Speed:
    try:
        chosen = Precision(precision)
    except ValueError:
        raise BenchError(f"precision {precision!r}: choose one of {', '.join(p.value for p in Precision)}") from None
    return Speed(chosen, channels_last, compile)


@dataclass(frozen=True)
class _Options:
    """How one evaluation runs, as the public calls were given it."""

    n: int | None = None
    eps: float | str | None = None
    norm: str | None = None
    seed: int = 0
    sample_seed: int | None = None
    device: str | None = None
    batch_size: int = 500
    save: bool = False
    results_dir: Path = Path("results/runs")
    data_dir: Path | str | None = None
    allow_randomized: bool = False
    draws: int = RANDOMIZED_DRAWS
    speed: Speed = Speed()
    keep_adversarials: bool = False
    resume: bool = False
    quiet: bool = True
    certify: tuple[Method, ...] = ()
    certify_time_limit: float = CERTIFY_TIME_LIMIT


def _run(model: Model, dataset: str | Points, attacks: tuple[AttackSpec, ...], purpose: RunPurpose, opt: _Options,
         model_options: dict[str, Any], *, name: str | None = None) -> RunResult:
    """`dataset`: a dataset name (its test split), or points as tensors; then `name` is what the
    attacks may look up (e.g. a transfer surrogate), TENSORS for nothing."""
    name, given = (dataset, None) if isinstance(dataset, str) else (name or TENSORS, _points(dataset))
    if given is not None:
        if opt.save:
            raise BenchError("save=True needs a dataset name: records are of test-split points, not given tensors")
        if not isinstance(model, (nn.Module, ResolvedModel)):
            raise BenchError("with points given as tensors, pass a module or bench.load(spec, dataset=...)'s result")
        if opt.sample_seed is not None:
            raise BenchError("sample_seed draws test-split points: with tensors, select them yourself")
    if opt.resume and not opt.save:
        raise BenchError("resume=True continues a saved run: give save=True (the progress lives in results_dir)")
    resolved = load(model, dataset=name, norm=opt.norm, **model_options)
    threat = _threat(name, given[0] if given is not None else None, opt.norm, opt.eps)
    defense = _defense_of(resolved)
    cfg = RunConfig(dataset=name, threat=threat, attack_specs=attacks, defense=defense, in_process=defense is None,
                    n=opt.n, sample_seed=opt.sample_seed, seed=opt.seed, batch_size=opt.batch_size,
                    device=opt.device or "auto", speed=opt.speed, save_adv=opt.keep_adversarials,
                    results_dir=opt.results_dir, resume=opt.resume,
                    data_dir=Path(opt.data_dir) if opt.data_dir is not None else None,
                    allow_randomized=opt.allow_randomized, draws=opt.draws, quiet=opt.quiet, purpose=purpose,
                    certify=opt.certify, certify_time_limit=opt.certify_time_limit)
    if given is None:
        return harness.evaluate(cfg, resolved, write=opt.save)
    built = cfg.attacks()
    x, y = given
    if opt.n is not None:
        x, y = x[:opt.n], y[:opt.n]
    return evaluate_on(cfg, built, resolved, x, y, np.arange(x.shape[0]), _classes(resolved, x), write=opt.save)


def _defense_of(resolved: ResolvedModel) -> str | None:
    """The registered defense behind a model (its adaptive attacks need it), from the sidecar."""
    name = resolved.sidecar.get("defense")
    return str(name) if name else None


@dataclass(frozen=True)
class Attacked:
    """Adversarial inputs for `x` (the clean input where the attack found nothing) and which hold:
    misclassified, inside the ε-ball and [0, 1], checked in fp32. Points the model already gets
    wrong are not attacked (`clean_correct` False, `success` False)."""

    x_adv: torch.Tensor
    success: torch.Tensor
    clean_correct: torch.Tensor
    broken_by: list[str | None]


def attack(model: Model, x: torch.Tensor, y: torch.Tensor, spec: str = "pgd", *, eps: float | str,
           norm: str = "linf", seed: int = 0, device: str | None = None, batch_size: int = 500,
           dataset: str = "fashion-mnist", **model_options: Any) -> Attacked:
    """One attack (`spec` as the CLI writes it, e.g. "pgd:steps=50,restarts=2") on the given
    points. A spec-string `model` is loaded for `dataset`."""
    resolved = load(model, dataset=dataset, norm=norm, **model_options)
    result = _run(resolved, (x, y), _attack_specs(spec), RunPurpose.EVALUATION,
                  _Options(eps=eps, norm=norm, seed=seed, device=device, batch_size=batch_size,
                           keep_adversarials=True), {}, name=dataset)
    store = result.adversarials
    assert store is not None
    record = result.record
    return Attacked(store.x_adv.clone(), store.broken.clone(), torch.from_numpy(record.clean_correct.copy()),
                    list(record.broken_first_by or ()))


# ------------------------------------------------------------------ audits and leaderboards

def inspect(model: Model, *, dataset: str | None = None, norm: str | None = None, eps: float | str | None = None,
            device: str | None = None, data_dir: Path | str | None = None, sha256: str | None = None,
            allow_randomized: bool = False, **qualifiers: Any) -> Inspection:
    """`bench inspect`: what the suite knows about a model before attacking it (source, hash,
    architecture, declared input, the interfaces adaptive attacks use, what `adaptive` runs on it)
    and whether it passes the guards. `dataset` defaults to a checkpoint's own, else fashion-mnist."""
    from bench.evaluation.inspection import describe

    checkpoint = name_model(str(model)).checkpoint if isinstance(model, (str, Path)) else None
    name = RunConfig.resolve_dataset(dataset, checkpoint)
    threat = _threat(name, None, norm, eps)
    resolved = load(model, dataset=name, norm=norm, sha256=sha256, **qualifiers)
    defense = _defense_of(resolved)
    cfg = RunConfig(dataset=name, threat=threat, attack_specs=(AttackSpec(ADAPTIVE),), defense=defense,
                    in_process=defense is None, device=device or "auto",
                    data_dir=Path(data_dir) if data_dir is not None else None, allow_randomized=allow_randomized)
    return describe(resolved, cfg)


def audit(model: str | Path, *, dataset: str = "fashion-mnist", n: int = 200, eps: float | str | None = None,
          norm: str | None = None, seed: int = 0, device: str | None = None, sha256: str | None = None,
          results_dir: Path | str = Path("results/runs"), audits_dir: Path | str | None = None,
          binarization_points: int = 100, binarization_attacks: str | Sequence[str] | None = None,
          standard: str | Sequence[str] | None = None, adaptive: str | Sequence[str] | None = None,
          baseline: str | Sequence[str] | None = None, strength: str | Sequence[str] | None = None,
          **qualifiers: Any) -> Audit:
    """`bench audit` as a call: it reuses and writes run records in `results_dir` (they are its
    evidence), so the model must be one the records can name: a defense, a checkpoint or a spec
    (`qualifiers`: weights, trust_checkpoint, mean, std, input_range, model_dir).
    `binarization_points=0` skips the binarization test. The attack lists (`standard`, `adaptive`,
    `baseline`, the `strength` ladder, `binarization_attacks`) default to `bench audit`'s."""
    from bench.auditing.binarization import BinarizationSettings
    from bench.auditing.runner import (
        ADAPTIVE_ATTACKS,
        BASELINE_ATTACKS,
        BINARIZATION_ATTACKS,
        STRENGTH_LADDER,
    )
    from bench.reporting.derived import derived_root

    def specs(given: str | Sequence[str] | None, default: tuple[AttackSpec, ...]) -> tuple[AttackSpec, ...]:
        return default if given is None else _attack_specs(given)

    if isinstance(model, (nn.Module, ResolvedModel)):
        raise BenchError("bench.audit keeps its evidence in run records: give the model as a spec "
                         "(a defense, a checkpoint file, package.module:factory with weights=...)")
    load(model, dataset=dataset, norm=norm, sha256=sha256, **qualifiers)  # a bad model fails before any attack
    named = name_model(str(model))
    run = RunConfig(dataset=dataset, threat=_threat(dataset, None, norm, eps), attack_specs=specs(standard, STANDARD_ATTACKS),
                    defense=named.defense, checkpoint=named.checkpoint,
                    model=spec_with_options(named.model, qualifiers) if named.model else None, sha256=sha256, n=n,
                    seed=seed, device=device or "auto", results_dir=Path(results_dir), quiet=True)
    if binarization_points < 0:
        raise BenchError(f"binarization_points={binarization_points} must be at least 0")
    settings = BinarizationSettings(points=binarization_points) if binarization_points else None
    return audit_and_publish(AuditConfig(run, standard=run.attack_specs, adaptive=specs(adaptive, ADAPTIVE_ATTACKS),
                                         baseline=specs(baseline, BASELINE_ATTACKS),
                                         strength=specs(strength, STRENGTH_LADDER),
                                         audits_dir=Path(audits_dir) if audits_dir else derived_root(run.results_dir) / "audits",
                                         binarization=settings,
                                         binarization_attacks=specs(binarization_attacks, BINARIZATION_ATTACKS)))


def audit_and_publish(cfg: AuditConfig) -> Audit:
    """The audit, its report written to `cfg.audits_dir` (the leaderboard links it from there) and the
    derived files rebuilt: `bench audit` and `bench.audit` both end here, so neither can skip the report."""
    from bench.auditing import report

    ensure_writable_dir(cfg.run.results_dir, "results_dir")  # both before any attack runs
    ensure_writable_dir(cfg.audits_dir, "audits_dir")
    result = run_audit(cfg)
    md, _ = report.write(result, cfg)
    result = dataclasses.replace(result, report=md)
    if result.records:
        try:
            rebuild(cfg.run.results_dir, with_leaderboard=True)
        except BenchError as exc:
            print(f"warning: results.csv / leaderboard not rebuilt: {exc}", file=sys.stderr)
    return result


@dataclass(frozen=True)
class GateReport:
    """What `bench check` prints, with the verdicts behind it."""

    result: GateResult
    text: str

    @property
    def passed(self) -> bool:
        return not self.result.failed

    def __str__(self) -> str:
        return self.text


def _gate_choice(dataset: str, n: int | None, attacks: str | Sequence[str] | None, seed: int | None
                 ) -> ProtocolChoice:
    """What the call asks for (None: each baseline's own protocol); its attacks checked before anything runs."""
    choice = ProtocolChoice(n=n, seed=seed, attacks=None if attacks is None else _attack_specs(attacks))
    validate_protocol(choice.over(GateProtocol()), dataset)
    return choice


def _sorted_models(models: Sequence[str | Path], qualifiers: dict[str, Any], what: str = "gate"
                   ) -> tuple[list[str], list[Path], ModelSpec | None]:
    """Model specs as `bench.load` reads them → (defenses, checkpoint files, the one user model)."""
    defenses, files, specs = [], [], []
    for model in models:
        if isinstance(model, (nn.Module, ResolvedModel)):
            raise BenchError(f"the {what} keeps its evidence in files that must name each model: give models as "
                             "specs (a defense, a checkpoint file, package.module:factory with weights=...), "
                             "not loaded modules")
        named = name_model(str(model))
        if named.defense is not None:
            defenses.append(named.defense)
        elif named.checkpoint is not None:
            files.append(named.checkpoint)
        else:
            specs.append(spec_with_options(str(named.model), qualifiers))
    if len(specs) > 1:
        raise BenchError(f"one user model per {what} call: its qualifiers (weights=, mean=, ...) apply to it")
    if not specs:
        _refuse_stray_qualifiers(qualifiers)
    return defenses, files, specs[0] if specs else None


def gate_check(defenses: Sequence[str], checkpoints: Sequence[Path], model: ModelSpec | None, *, dataset: str,
               baselines: Path | str, n: int | None = None, attacks: str | Sequence[str] | None = None,
               seed: int | None = None, label: str | None = None, sha256: str | None = None,
               quiet: bool = True) -> GateReport:
    """`check` with the models already sorted (what the CLI's --defense, --checkpoint, --model give)."""
    choice = _gate_choice(dataset, n, attacks, seed)
    targets, problems = requested_targets(dataset, Path(baselines), defenses=defenses, checkpoints=checkpoints,
                                          model=model, label=label, sha256=sha256)
    result = gate.run_gate(targets, Path(baselines), choice, problems, quiet=quiet)
    return GateReport(result, gate.format_report(result, dataset))


def gate_update(defenses: Sequence[str], checkpoints: Sequence[Path], model: ModelSpec | None, *, reason: str,
                dataset: str, baselines: Path | str, n: int | None = None, attacks: str | Sequence[str] | None = None,
                seed: int | None = None, label: str | None = None, sha256: str | None = None,
                quiet: bool = True) -> list[Path]:
    """`update_baselines` with the models already sorted."""
    gate.require_reason(reason)  # before any folder is made
    choice = _gate_choice(dataset, n, attacks, seed)
    targets, _ = requested_targets(dataset, Path(baselines), defenses=defenses, checkpoints=checkpoints, model=model,
                                   label=label, sha256=sha256, updating=True)  # problems: `check` reports them
    return gate.update(targets, Path(baselines), choice, reason, quiet=quiet)


def check(models: Sequence[str | Path] = (), *, dataset: str = "fashion-mnist",
          baselines: Path | str = Path("results/baselines"), n: int | None = None,
          attacks: str | Sequence[str] | None = None, seed: int | None = None, label: str | None = None,
          sha256: str | None = None, quiet: bool = True, **qualifiers: Any) -> GateReport:
    """`bench check`: re-evaluate each model under the gate's protocol (default: every committed and
    baselined checkpoint) and compare per-example flags with its baseline. A user model takes the
    qualifiers (weights, trust_checkpoint, mean, std, input_range, model_dir); its baseline is
    `label` (default: the loader's). Without models: exactly the baselines in `baselines` (the
    project's folder: every committed checkpoint too). Each runs its baseline's stored protocol;
    `n`, `attacks`, `seed` given and different from it are red (re-bless to change the protocol)."""
    defenses, files, spec = _sorted_models(models, qualifiers)
    return gate_check(defenses, files, spec, dataset=dataset, baselines=baselines, n=n, attacks=attacks, seed=seed,
                      label=label, sha256=sha256, quiet=quiet)


def update_baselines(models: Sequence[str | Path] = (), *, reason: str, dataset: str = "fashion-mnist",
                     baselines: Path | str = Path("results/baselines"), n: int | None = None,
                     attacks: str | Sequence[str] | None = None, seed: int | None = None, label: str | None = None,
                     sha256: str | None = None, quiet: bool = True, **qualifiers: Any) -> list[Path]:
    """`bench check --update-baseline --reason`: evaluate and write the baselines of exactly the
    models named (none: those already in `baselines`), keeping each one's history, under `n`,
    `attacks`, `seed` where given, else the previous baseline's protocol, else `GateProtocol()`;
    returns the files written."""
    defenses, files, spec = _sorted_models(models, qualifiers)
    return gate_update(defenses, files, spec, reason=reason, dataset=dataset, baselines=baselines, n=n,
                       attacks=attacks, seed=seed, label=label, sha256=sha256, quiet=quiet)


# ------------------------------------------------------------------ training

RECIPE_OVERRIDES = ("arch", "epochs", "batch_size", "lr", "momentum", "weight_decay", "eps", "attack_steps",
                    "train_points", "init", "seed")  # the recipe fields a call (or `bench train`) may change


@dataclass(frozen=True)
class Trained:
    """A checkpoint `bench.train` wrote: its file (the sidecar beside it), hash, the epoch chosen on
    held-out data with its scores (keys epoch, clean, robust: PGD-10) and the training time."""

    path: Path
    sha256: str
    held_out: dict[str, float]
    seconds: float

    def __str__(self) -> str:
        scores = ", ".join(f"{k} {v:.3f}" for k, v in self.held_out.items() if k != "epoch")
        return (f"wrote {self.path} (sha256 {self.sha256[:16]}…) in {self.seconds:.0f} s; selected epoch "
                f"{int(self.held_out['epoch'])} on held-out data: {scores}")


def train(defense: str, *, dataset: str = "fashion-mnist", out: Path | str | None = None, budget: str = "recipe",
          params: dict[str, Any] | None = None, data_dir: Path | str | None = None, device: str | None = None,
          resume: bool = False, overwrite: bool = False, max_train_points: int | None = None, quiet: bool = True,
          **recipe: Any) -> Trained | None:
    """`bench train`: train a registered defense with its dataset recipe (`recipe`: overrides of
    RECIPE_OVERRIDES, e.g. epochs=2; `params`: the method's own hyper-parameters), select the best
    epoch on held-out data and write checkpoint + sidecar (default: where the committed ones live;
    an existing file is refused unless `overwrite`). None on a torchrun rank other than 0."""

    from bench.device import resolve_device
    from bench.files import ensure_writable_file
    from defenses.training import trainer

    for key in recipe:
        if key not in RECIPE_OVERRIDES:
            hint = did_you_mean(key, RECIPE_OVERRIDES, n=2)
            raise BenchError(f"{key!r} is not a recipe field.{hint} Fields: {', '.join(RECIPE_OVERRIDES)}")
    overrides: dict[str, Any] = {**recipe, "params": dict(params) if params else None}
    job = trainer.resolve_job(defense, dataset, overrides, Path(out) if out is not None else None, budget=budget,
                              data_dir=Path(data_dir) if data_dir is not None else None, resume=resume, quiet=quiet,
                              max_train_points=max_train_points, device=device or "auto")
    resolve_device(job.device)  # a bad device is refused before any data is read
    ensure_writable_file(job.out, "--out", overwrite=overwrite)  # before an epoch is spent
    sidecar = trainer.train(job)
    if not sidecar:
        return None
    return Trained(job.out, str(sidecar["sha256"]), {k: float(v) for k, v in sidecar["held_out"].items()},
                   float(sidecar["train_seconds"]))


# ------------------------------------------------------------------ sweeps

@dataclass(frozen=True)
class SweepOutcome:
    """One model at one ε of a sweep: the run of what was not recorded yet (None when everything
    was) and the attack labels it skipped because a record has them."""

    label: str
    skipped: tuple[str, ...]
    run: RunResult | None

    @property
    def evaluation(self) -> Evaluation | None:
        return None if self.run is None else _evaluation(self.run)


@dataclass(frozen=True)
class Sweep:
    """What a sweep did per model and ε, and the derived files it rebuilt from all the records.
    Run as jobs (`jobs=`): no outcomes, the jobs as they ended (or as submitted, without waiting),
    and `derived` None where the last job rebuilt the files itself."""

    outcomes: tuple[SweepOutcome, ...]
    derived: Derived | None
    jobs: tuple[JobView, ...] = ()
    nothing_to_do: tuple[str, ...] = ()  # with jobs: the models whose cells were all recorded


def sweep_targets(defenses: Sequence[str], checkpoints: Sequence[Path], model: ModelSpec | None, *, dataset: str,
                  attacks: str | Sequence[str] = DEFAULT_ATTACKS, eps: float | str | None = None,
                  eps_sweep: Sequence[float] | None = None, norm: str | None = None, n: int | None = None,
                  sample_seed: int | None = None, seed: int = 0, batch_size: int = 500, device: str | None = None,
                  data_dir: Path | str | None = None, results_dir: Path | str = Path("results/runs"),
                  sha256: str | None = None, precision: str = "fp32", quiet: bool = True) -> list[RunConfig]:
    """One run configuration per model and ε of a sweep (models already sorted, as the CLI's
    --checkpoints-dir and --model give them), every option checked before anything runs."""
    from bench.evaluation import sweep as planner

    DATASETS.get(dataset)
    if eps is not None and eps_sweep is not None:
        raise BenchError("give eps or eps_sweep, not both")
    if not (defenses or checkpoints or model):
        defenses = planner.registered_checkpoints(dataset)
    models: list[dict[str, Any]] = ([{"defense": d} for d in defenses] + [{"checkpoint": p} for p in checkpoints]
                                    + ([{"model": model}] if model is not None else []))
    if eps_sweep is not None:
        if not eps_sweep:
            raise BenchError("eps_sweep names no ε")
        threats = [(RunConfig.resolve_threat(dataset, norm, str(e)), RunPurpose.EPS_SWEEP) for e in eps_sweep]
    else:
        threats = [(RunConfig.resolve_threat(dataset, norm, None if eps is None else str(eps)), RunPurpose.EVALUATION)]
    specs = _attack_specs(attacks)
    speed = _speed(precision, channels_last=False, compile=False)
    targets = [RunConfig(dataset=dataset, threat=threat, purpose=purpose, attack_specs=specs, n=n,
                         sample_seed=sample_seed, seed=seed, batch_size=batch_size, device=device or "auto",
                         data_dir=Path(data_dir) if data_dir is not None else None, results_dir=Path(results_dir),
                         resume=None, quiet=quiet, sha256=sha256, speed=speed, **chosen)
               for chosen in models for threat, purpose in threats]
    for target in targets:
        target.attacks()  # a bad attack list fails before anything runs
    ensure_writable_dir(Path(results_dir), "results_dir")  # and a folder the records and tables cannot go to
    ensure_writable_dir(derived_root(Path(results_dir)), "the folder of the derived files")
    return targets


def sweep_in_process(targets: Sequence[RunConfig], force: bool = False,
                     on_outcome: Callable[[SweepOutcome], None] | None = None) -> Sweep:
    """The sweep's checkpoints one after another in this process, then the derived files rebuilt."""
    from bench.evaluation import sweep as planner

    outcomes: list[SweepOutcome] = []

    def collect(item: planner.SweepItem, result: RunResult | None) -> None:
        outcomes.append(SweepOutcome(item.label, tuple(item.skipped), result))
        if on_outcome is not None:
            on_outcome(outcomes[-1])

    planner.run(list(targets), force, collect)
    return Sweep(tuple(outcomes), rebuild(targets[0].results_dir if targets else Path("results/runs"),
                                          with_leaderboard=True))


def sweep_jobs(targets: Sequence[RunConfig], jobs: JobOptions, force: bool = False,
               on_job: Callable[[JobView], None] | None = None) -> Sweep:
    """The sweep as one job per checkpoint with cells left (`jobs.executor`: local or slurm); waits
    for them unless `jobs.wait` is False. The last job to end rebuilds the derived files."""
    from bench.cluster.submit import submit

    done = submit(targets, force, jobs, on_job or (lambda view: None))
    return Sweep((), done.derived, done.jobs, done.nothing_to_do)


def sweep_status(models: Sequence[str | Path] = (), *, dataset: str = "fashion-mnist", **options: Any) -> list[Cell]:
    """Each cell (model × attack) of the sweep `bench.sweep(models, **options)` would run: done
    (recorded), queued, running, failed (with its job's log), or not submitted."""
    from bench.cluster.status import cells

    planning = set(introspect.signature(sweep_targets).parameters)
    qualifiers = {k: options.pop(k) for k in list(options) if k not in planning}
    defenses, files, spec = _sorted_models(models, qualifiers, "sweep_status")
    return cells(sweep_targets(defenses, files, spec, dataset=dataset, **options))


def sweep(models: Sequence[str | Path] = (), *, dataset: str = "fashion-mnist",
          attacks: str | Sequence[str] = DEFAULT_ATTACKS, eps: float | str | None = None,
          eps_sweep: Sequence[float] | None = None, norm: str | None = None, n: int | None = None,
          sample_seed: int | None = None, seed: int = 0, batch_size: int = 500, device: str | None = None,
          data_dir: Path | str | None = None, results_dir: Path | str = Path("results/runs"),
          sha256: str | None = None, precision: str = "fp32", force: bool = False, quiet: bool = True,
          on_outcome: Callable[[SweepOutcome], None] | None = None, jobs: JobOptions | None = None,
          on_job: Callable[[JobView], None] | None = None, **qualifiers: Any) -> Sweep:
    """`bench sweep`: the attacks over each model (default: every committed checkpoint of the
    dataset), at `eps` or at each ε of `eps_sweep`, running only what no record in `results_dir`
    has (`force=True` reruns it), then rebuilding results.csv and the leaderboard beside it.
    `precision` is `bench run`'s (bf16 attacks, successes verified in fp32); a record counts as done
    whatever arithmetic made it.
    Models are specs (defenses, checkpoint files, one user model with its qualifiers: weights,
    trust_checkpoint, mean, std, input_range, model_dir); `on_outcome` sees each as it finishes.
    `jobs=JobOptions(ExecutorKind.SLURM, ...)` runs each model with cells left as a job instead
    (docs/cluster.md); `on_job` sees each job as it ends."""
    defenses, files, spec = _sorted_models(models, qualifiers, "sweep")
    targets = sweep_targets(defenses, files, spec, dataset=dataset, attacks=attacks, eps=eps, eps_sweep=eps_sweep,
                            norm=norm, n=n, sample_seed=sample_seed, seed=seed, batch_size=batch_size, device=device,
                            data_dir=data_dir, results_dir=results_dir, sha256=sha256, precision=precision,
                            quiet=quiet)
    if jobs is not None:
        return sweep_jobs(targets, jobs, force, on_job)
    return sweep_in_process(targets, force, on_outcome)


def leaderboard(results_dir: Path | str = Path("results/runs"), *, write: bool = False) -> str:
    """The leaderboard's markdown from the records in `results_dir`; `write=True` also rewrites
    LEADERBOARD.md, its plots and results.csv beside them, as `bench leaderboard` does."""
    from bench.records.run_record import load_run_records
    from bench.reporting import markdown as board

    runs = Path(results_dir)
    if not runs.is_dir():
        raise BenchError(f"no results folder at {runs}")
    if write:
        rebuild(runs, with_leaderboard=True)
    markdown, _ = board.render(load_run_records(runs))
    return markdown
