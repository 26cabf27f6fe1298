"""`evaluate(cfg)`: run every attack over the evaluation subset and write the run record.

Per example the harness keeps: clean-correct, robust under each attack, which attack (or
AutoAttack component) broke it first, and the true-class margin at each attack's output (a
fingerprint of what the attack did, which the CI gate compares); the worst case is robust under
all attacks. Each attack runs as a cascade of stages over the still-robust points, batch by
batch; progress is saved after every batch so that `--resume` continues to identical flags.
With `--cascade` the attacks themselves form one cascade: each attacks only what the earlier
ones left robust (same seeds, so the worst case is the same; per-attack flags become cumulative).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import data
from bench.attacks import Attack, AttackOutput, format_attacks
from bench.errors import BenchError
from bench.evaluation.certified import certify_run, check_certifiable, refuse_contradictions
from bench.evaluation.config import RunConfig
from bench.evaluation.resolve import ResolvedModel, resolve_model
from bench.files import ensure_writable_dir
from bench.loading.guards import check_input_range, preflight
from bench.loading.model import ModelUnderTest, Speed
from bench.progress import progress
from bench.provenance import stamp
from bench.records.adversarials import AdversarialStore
from bench.records.resume import AttackProgress, ResumeState, StageCost
from bench.records.run_record import AttackResult, ModelInfo, Provenance, RunRecord, RunSettings
from bench.records.schema import SCHEMA_VERSION
from bench.records.store import write_record
from bench.shards import Shard, join
from bench.stats import Proportion
from bench.threat import ThreatModel
from bench.verify import verify_successes

MARGIN_DECIMALS = 4  # per-example margins at the attack's output: a fingerprint, not a statistic


@dataclass
class RunResult:
    record_path: Path | None  # None when not written: torchrun ranks other than 0, the API without save
    record: RunRecord  # the record as written (and as `bench.records.run_record` reads it back)
    adversarials: AdversarialStore | None = None  # with save_adv: the worst case's first success per point


def _execution_order(attacks: list[Attack], cfg: RunConfig) -> list[Attack]:
    """A cascade runs batch-dependent attacks (official AutoAttack) first, on every clean-correct
    point as a plain run would, and then the batch-independent ones on what is left, so its worst
    case is identical to a plain run's."""
    if not cfg.cascade:
        return attacks
    return sorted(attacks, key=lambda a: a.independent_of_batch(cfg.threat))


def _start_from(prog: AttackProgress, survivors: torch.Tensor) -> None:
    """Cascade: an attack that has not started yet attacks only what earlier attacks left robust."""
    if prog.stage == 0 and prog.batch == 0 and prog.stage_alive is None:
        prog.alive = (torch.tensor(prog.alive, dtype=torch.bool) & survivors).int().tolist()


def _run_stage(stage: Attack, model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
               seed: int) -> AttackOutput:
    """Forward-only stages run under inference mode; a batch-independent one that runs out of
    GPU memory is split in halves (same outcomes, since no example depends on its batch)."""
    try:
        with torch.inference_mode() if stage.forward_only else contextlib.nullcontext():
            return stage.run(model, x, y, threat, seed)
    except torch.OutOfMemoryError:
        if not stage.independent_of_batch(threat) or x.shape[0] < 2:
            raise
        torch.cuda.empty_cache()
        half = x.shape[0] // 2
        first, second = (_run_stage(stage, model, x[s], y[s], threat, seed) for s in (slice(None, half), slice(half, None)))
        return AttackOutput(torch.cat([first.x_adv, second.x_adv]), torch.cat([first.success, second.success]),
                            _names(first) + _names(second),
                            first.warnings + [w for w in second.warnings if w not in first.warnings])


def _names(out: AttackOutput) -> list[str | None]:
    return out.broken_by if out.broken_by is not None else [None] * out.success.shape[0]


@dataclass
class BatchResult:
    """One attacked batch, in plain values (gathered across torchrun ranks)."""

    batch: int
    ids: list[int]
    margins: list[float]
    broken: list[tuple[int, str | None]]  # (position in batch, component)
    forward: int
    backward: int
    seconds: float
    warnings: list[str]
    x_adv: torch.Tensor | None  # only with --save-adv


@contextlib.contextmanager
def _callers_random_stream(device: torch.device) -> Iterator[None]:
    """torch's global generator as the caller left it, once the evaluation is over: a randomized
    model draws from it (seeded per batch, for reproducible runs), and the API runs inside training
    loops whose random stream an evaluation must not move."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        yield


def _attack_batch(stage: Attack, label: str, model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor,
                  ids: torch.Tensor, b: int, cfg: RunConfig) -> BatchResult:
    before, start = model.passes.snapshot(), time.time()
    xb, yb = x[ids].to(model.device), y[ids].to(model.device)
    if model.randomized:  # the model's own draws come from torch's global generator: reproducible per batch
        torch.manual_seed(stage.batch_seed(cfg.seed, b))
    out = _run_stage(stage, model, xb, yb, cfg.threat, stage.batch_seed(cfg.seed, b))
    spent = model.passes.since(before)
    held = verify_successes(model, xb, out.x_adv, yb, out.success, cfg.threat, label)
    margins = model.true_class_margin(out.x_adv, yb).tolist()
    names = _names(out)
    broken = [(j, names[j]) for j in held.cpu().nonzero().squeeze(1).tolist()]
    warnings = out.warnings
    if int(held.sum()) < int(out.success.sum()):
        where = (f"the majority vote over {model.draws} draws of the randomized model" if model.randomized else
                 f"the IEEE-fp32 reference (attack arithmetic {cfg.speed.precision.value}"
                 f"{', compiled' if cfg.speed.compile else ''})")
        warnings = [*warnings, f"{label}: {int(out.success.sum()) - int(held.sum())} claimed successes that did not "
                    f"hold in {where} were counted as robust"]
    return BatchResult(b, ids.tolist(), margins, broken, spent.forward, spent.backward, time.time() - start,
                       warnings, out.x_adv.detach().cpu() if cfg.save_adv else None)


def _apply(prog: AttackProgress, alive: torch.Tensor, label: str, stage: str, r: BatchResult,
           store: AdversarialStore | None) -> None:
    for j, point in enumerate(r.ids):
        prog.margin[point] = round(r.margins[j], MARGIN_DECIMALS)
    for j, component in r.broken:
        alive[r.ids[j]] = False
        prog.broken_by[r.ids[j]] = f"{label}/{component}" if component else label
    prog.warnings += [w for w in r.warnings if w not in prog.warnings]
    if store is not None and r.x_adv is not None:
        success = torch.zeros(len(r.ids), dtype=torch.bool)
        success[[j for j, _ in r.broken]] = True
        store.add(torch.tensor(r.ids), r.x_adv, success)
        store.save()
    prog.alive, prog.batch = alive.int().tolist(), r.batch + 1
    prog.forward, prog.backward, prog.seconds = prog.forward + r.forward, prog.backward + r.backward, prog.seconds + r.seconds
    cost = prog.stage_cost.setdefault(stage, StageCost())
    cost.seconds = round(cost.seconds + r.seconds, 3)
    cost.forward, cost.backward = cost.forward + r.forward, cost.backward + r.backward
    cost.attacked, cost.broken = cost.attacked + len(r.ids), cost.broken + len(r.broken)


def _run_attack(model: ModelUnderTest, attack: Attack, x: torch.Tensor, y: torch.Tensor,
                cfg: RunConfig, state: ResumeState, store: AdversarialStore | None, shard: Shard) -> AttackProgress:
    """Run one attack's stages over the points still robust to it; returns its progress entry.
    One process saves progress after every batch; sharded runs after every stage."""
    prog = state.progress[attack.label]
    alive = torch.tensor(prog.alive, dtype=torch.bool)
    stages = list(attack.stages())
    if prog.stage > len(stages):
        raise BenchError(f"resume state {state.path} does not match this run ({attack.label} has {len(stages)} "
                         f"stages, the state says {prog.stage} are done): delete it to start over")
    for s, stage in enumerate(stages):
        if s < prog.stage:
            continue
        if prog.stage_alive is None:
            prog.stage_alive = alive.int().tolist()
        todo = torch.tensor(prog.stage_alive, dtype=torch.bool).nonzero().squeeze(1)
        size = max(todo.numel(), 1) if stage.forward_only and stage.independent_of_batch(cfg.threat) else cfg.batch_size
        chunks = todo.split(size) if todo.numel() else ()  # split() of nothing gives one empty chunk
        name = getattr(stage, "component", stage.label)
        if prog.batch > len(chunks):
            raise BenchError(f"resume state {state.path} does not match this run ({attack.label} {name} has "
                             f"{len(chunks)} batches, the state says {prog.batch} are done): delete it to start over")
        mine = [b for b in range(prog.batch, len(chunks)) if shard.mine(b)]
        done = []
        for b in progress(mine, desc=f"{attack.label} {name}", disable=cfg.quiet or not shard.writes):
            result = _attack_batch(stage, attack.label, model, x, y, chunks[b], b, cfg)
            if shard.sharded:
                done.append(result)
                continue
            _apply(prog, alive, attack.label, name, result, store)
            state.save()
        for result in sorted(shard.gather(done), key=lambda r: r.batch):
            _apply(prog, alive, attack.label, name, result, store)
        prog.stage, prog.batch, prog.stage_alive = s + 1, 0, None
        state.save()
    return prog


def _build_record(cfg: RunConfig, model: ResolvedModel, attacks: list[Attack], indices: np.ndarray,
                  y: torch.Tensor, clean_correct: np.ndarray, progress_by_attack: dict[str, AttackProgress],
                  guard_warnings: list[str], device: torch.device, resumed: bool, world_size: int,
                  randomized_draws: int | None) -> RunRecord:
    n = len(indices)
    robust = {a.label: np.array(progress_by_attack[a.label].alive, dtype=bool) & clean_correct
              for a in attacks}
    worst = np.logical_and.reduce([clean_correct, *robust.values()])
    first_broken: list[str | None] = [None] * n
    for a in attacks:
        for i, who in enumerate(progress_by_attack[a.label].broken_by):
            if who is not None and first_broken[i] is None:
                first_broken[i] = who
    results = {}
    for a in attacks:
        prog = progress_by_attack[a.label]
        results[a.label] = AttackResult(
            a.label, a.name, a.protocol, dataclasses.asdict(a.config), Proportion(int(robust[a.label].sum()), n),
            round(prog.seconds, 3), prog.forward / n, prog.backward / n, a.adaptive, robust[a.label],
            tuple(getattr(s, "component", s.label) for s in a.stages()), tuple(prog.warnings), tuple(prog.margin),
            prog.forward, prog.backward, {k: dataclasses.asdict(v) for k, v in prog.stage_cost.items()})
    sidecar = model.sidecar
    return RunRecord(
        file=None, schema_version=SCHEMA_VERSION, purpose=cfg.purpose, threat=cfg.threat,
        model=ModelInfo(model.label, model.recorded_path(), model.sha256, cfg.defense or sidecar.get("defense"),
                        sidecar.get("variant"), sidecar.get("arch"), model.input_description(),
                        _training_budget(sidecar), sidecar.get("paper"), sidecar.get("hyperparameters"),
                        sidecar.get("command"), model.source),
        dataset=cfg.dataset,
        selection=cfg.selection or ("first-n" if cfg.sample_seed is None else f"sample-seed={cfg.sample_seed}"),
        sample_seed=cfg.sample_seed, index_sha256=data.hash_indices(indices),
        settings=RunSettings(format_attacks(cfg.attack_specs), cfg.seed, cfg.batch_size, cfg.device, resumed,
                             cfg.cascade, world_size, randomized_draws),
        provenance=Provenance(**stamp(device), precision=cfg.speed.precision.value,
                              channels_last=cfg.speed.channels_last, compile=cfg.speed.compile),
        clean=Proportion(int(clean_correct.sum()), n), attacks=results, worst_case=Proportion(int(worst.sum()), n),
        warnings=tuple(guard_warnings + [w for a in attacks for w in progress_by_attack[a.label].warnings]),
        index=np.asarray(indices, dtype=np.int64), labels=y.cpu().numpy().astype(np.int64),
        clean_correct=clean_correct.astype(bool), worst_flags=worst, broken_first_by=tuple(first_broken))


def _training_budget(sidecar: dict[str, Any]) -> dict[str, Any] | None:
    """Epochs × training points and the inner attack, so leaderboards can show what a model cost."""
    recipe = sidecar.get("recipe")
    if not recipe:
        return None
    return {"name": sidecar.get("budget") or "recipe", "epochs": recipe.get("epochs"),
            "train_points": sidecar.get("train_points"),
            "attack_steps": recipe.get("attack_steps") if recipe.get("eps") else 0,
            "init": recipe.get("init"), "seconds": sidecar.get("train_seconds")}


def under_test(resolved: ResolvedModel, num_classes: int, device: torch.device, speed: Speed | None = None
               ) -> ModelUnderTest:
    """The attack-facing wrapper, with the model's declared normalization inside it."""
    mean, std = resolved.preprocessing.pixel_normalization() or (None, None)
    return ModelUnderTest(resolved.module.to(device), num_classes, mean, std, speed=speed or Speed())


def evaluate(cfg: RunConfig, resolved: ResolvedModel | None = None, *, write: bool = True) -> RunResult:
    """The configured model (or `resolved`, loaded already) on the configured test points; the
    record is written unless `write=False`."""
    attacks = cfg.attacks()  # a bad attack list fails before any data or model is loaded
    if write and join().writes:  # before any model, data or attack work: where the record and progress go
        ensure_writable_dir(cfg.results_dir, "--results-dir")
    resolved = resolved or resolve_model(cfg)
    test = data.load(cfg.dataset, data.Split.TEST, cfg.data_dir)
    indices = data.select_indices(len(test), cfg.n, cfg.sample_seed)
    x, y = test.batch(indices)
    return evaluate_on(cfg, attacks, resolved, x, y, indices, data.DATASETS.get(cfg.dataset).num_classes,
                       write=write)


def evaluate_on(cfg: RunConfig, attacks: list[Attack], resolved: ResolvedModel, x: torch.Tensor, y: torch.Tensor,
                indices: np.ndarray, num_classes: int, *, write: bool = True) -> RunResult:
    """`attacks` (built from `cfg`) on the points `x, y` (test-set `indices`). `write=False` (the
    Python API's default) keeps everything in memory: no resume state, no record, no files touched;
    the record is built all the same, and with `cfg.save_adv` so are the adversarial examples."""
    shard = join()
    writes = shard.writes and write
    if writes:
        ensure_writable_dir(cfg.results_dir, "--results-dir")
    device = cfg.torch_device()
    check_input_range(x)
    if cfg.certify:
        check_certifiable(cfg.certify, resolved, x)
    cfg.check_speed(device)
    model = under_test(resolved, num_classes, device, cfg.speed)
    model.draws = cfg.draws
    with _callers_random_stream(device), model.attack_mode():
        guard_warnings = preflight(model, x[:256], allow_randomized=cfg.allow_randomized)
        if model.randomized:
            torch.manual_seed(cfg.seed)
        clean_correct = (model.predict(x) == y).numpy()
        key = {"model_sha256": resolved.sha256, "index_sha256": data.hash_indices(indices),
               "dataset": cfg.dataset, "threat": [cfg.threat.norm.value, cfg.threat.eps],
               "attacks": [[a.protocol, a.label, repr(a.config)] for a in attacks],
               "seed": cfg.seed, "batch_size": cfg.batch_size, "cascade": cfg.cascade,
               "precision": cfg.speed.precision.value}
        state = ResumeState(cfg.results_dir / ".state" if write else None, f"{cfg.dataset}-{resolved.label}", key,
                            write=writes)
        store = None
        if cfg.save_adv and (writes or not write):
            store = AdversarialStore(state.path.with_suffix(".adv.pt") if state.path else None, x, indices,
                                     dataset=cfg.dataset, threat=cfg.threat, model_sha256=resolved.sha256)
        for attack in attacks:
            state.progress[attack.label] = AttackProgress.fresh(clean_correct.tolist())
        state.start(cfg.resume, before_write=shard.barrier)
        try:
            return _attack_and_record(cfg, resolved, attacks, model, x, y, indices, clean_correct,
                                      guard_warnings, device, state, store, shard, writes)
        finally:
            state.release()  # an interrupted run keeps its state, for --resume


def _attack_and_record(cfg: RunConfig, resolved: ResolvedModel, attacks: list[Attack], model: ModelUnderTest,
                       x: torch.Tensor, y: torch.Tensor, indices: np.ndarray, clean_correct: np.ndarray,
                       guard_warnings: list[str], device: torch.device, state: ResumeState,
                       store: AdversarialStore | None, shard: Shard, writes: bool) -> RunResult:
    survivors = torch.from_numpy(clean_correct).clone()  # from_numpy shares memory
    for attack in _execution_order(attacks, cfg):
        if cfg.cascade and attack.independent_of_batch(cfg.threat):
            _start_from(state.progress[attack.label], survivors)
        prog = _run_attack(model, attack, x, y, cfg, state, store, shard)
        survivors &= torch.tensor(prog.alive, dtype=torch.bool)
    record = _build_record(cfg, resolved, attacks, indices, y, clean_correct, state.progress,
                           [*cfg.extra_warnings, *guard_warnings], device, state.resumed, shard.world,
                           model.draws if model.randomized else None)
    if cfg.certify:
        certified = certify_run(cfg.certify, resolved, x, y, cfg.threat.eps, cfg.certify_time_limit)
        record = dataclasses.replace(record, certified=certified)
        refuse_contradictions(record)
    if not writes:
        return RunResult(None, record, store)
    path = write_record(cfg.results_dir, record, f"{cfg.dataset}-{resolved.label}")
    if store is not None:
        store.finish(path)
    state.finish()
    return RunResult(path, dataclasses.replace(record, file=path.name), store)
