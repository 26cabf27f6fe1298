"""The shared trainer: SGD + schedule, per-epoch held-out selection, resumable, sidecar out.

Runs on `--device` (CUDA when available). Resume is exact on CPU: shuffling and every random draw are derived from (seed, epoch, batch),
and the method/optimizer/scheduler state is saved after every epoch, so an interrupted run
continued with `--resume` ends with the same weights as an uninterrupted one. Under torchrun each
rank trains on its slice of every batch (see `bench.distributed`); rank 0 validates and writes.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bench import data as bench_data
from bench import distributed
from bench.attacks.gradient import pgd_iterates
from bench.attacks.losses import Loss
from bench.device import resolve_device
from bench.errors import BenchError, first_line
from bench.loading.sources import import_factory
from bench.loading.untrusted import load_tensors
from bench.progress import progress
from bench.provenance import stamp
from bench.threat import Norm
from bench.verifier.runner import Method as CertifyMethod
from bench.verifier.runner import certify_points
from defenses.nets.archs import ARCHS, build_arch, is_user_factory
from defenses.training import checkpoints
from defenses.training.augment import crop_flip
from defenses.training.method import Method, TrainContext
from defenses.training.registry import BUDGETS, DEFENSES, Defense, Recipe

log = logging.getLogger(__name__)

# The divergence rule, alike for every defense and budget: a non-finite training loss rolls the run back
# to the last finished epoch (the state saved after it) and halves the learning rate for the rest of
# the run, at most MAX_BACKOFFS times. A run that never diverges is untouched by it.
BACKOFF = 0.5
MAX_BACKOFFS = 3


@dataclass(frozen=True)
class TrainJob:
    defense: str
    dataset: str
    recipe: Recipe
    out: Path
    data_dir: Path | None = None
    resume: bool = False
    quiet: bool = False
    max_train_points: int | None = None  # a smaller training set, for tests and smoke runs
    val_points: int = 1000  # held-out points scored after every epoch
    max_batches: int | None = None  # stop each epoch after this many batches (smoke tests)
    device: str = "auto"  # cpu, cuda, cuda:N or auto (CUDA when available)
    budget: str = "recipe"  # the training budget applied to the recipe (defenses.training.registry.BUDGETS)


def resolve_job(defense: str, dataset: str, overrides: dict[str, Any], out: Path | None = None,
                budget: str = "recipe", **kwargs: Any) -> TrainJob:
    entry = DEFENSES.get(defense)
    bench_data.DATASETS.get(dataset)
    if dataset not in entry.recipes:
        raise BenchError(f"{defense} has no recipe for {dataset} (recipes: {', '.join(entry.recipes)})")
    recipe = BUDGETS.get(budget).apply(entry.recipes[dataset]).replace(**overrides)
    if is_user_factory(recipe.arch):
        if entry.arch_needs:
            takers = ", ".join(name for name, d in DEFENSES.items() if not d.arch_needs)
            raise BenchError(f"{defense} needs {entry.arch_needs}, so it cannot train --arch {recipe.arch}; "
                             f"the defenses that train an architecture of your own: {takers}")
        import_factory(recipe.arch, "--arch")  # a typo is refused before any data is read
    else:
        ARCHS.get(recipe.arch)
    for name in ("epochs", "batch_size", "train_points", "attack_steps"):
        value = getattr(recipe, name)
        if value is not None and value < 1:
            raise BenchError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if not 0 <= recipe.eps <= 1 or recipe.lr <= 0:
        raise BenchError(f"invalid recipe: eps must lie in [0, 1] (got {recipe.eps}) and lr be positive "
                         f"(got {recipe.lr})")
    typed = entry.make_params(recipe.params)  # CLI strings become the declared types (and are checked)
    recipe = recipe.replace(params={k: getattr(typed, k) for k in recipe.params})
    return TrainJob(defense, dataset, recipe, out or checkpoints.default_path(dataset, defense, recipe.arch, budget),
                    budget=budget, **kwargs)


def _generator(recipe: Recipe, epoch: int, batch: int, rank: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(recipe.seed * 1_000_003 + epoch * 100_003 + batch + rank * 7_919_993)


def validate(model: nn.Module, val: bench_data.ImageSet, eps: float, points: int,
             certify: bool = False) -> dict[str, float]:
    """Clean and PGD-10 accuracy on the held-out split (the only data used to select checkpoints),
    and with `certify` the IBP-certified accuracy (what a certifiably trained model is selected by)."""
    model.eval()
    device = next(model.parameters()).device
    x, y = (t.to(device) for t in val.batch(slice(0, points)))
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    metrics = {"clean": float(correct.float().mean())}
    if eps > 0:
        gen = torch.Generator().manual_seed(12345)
        final, found, _ = pgd_iterates(model, x, y, norm=Norm.LINF, eps=eps, steps=10,
                                       step_size=0.25 * eps, loss=Loss.CE, gen=gen)
        with torch.no_grad():
            robust = correct & (model(final).argmax(1) == y) & ~found
        metrics["robust"] = float(robust.float().mean())
        if certify:
            proof = certify_points(model, x.cpu(), y.cpu(), eps, CertifyMethod.IBP)
            metrics["certified"] = float(proof.certified.mean())
    return metrics


def _state_path(job: TrainJob) -> Path:
    return job.out.with_suffix(".train-state.pt")


def _job_key(job: TrainJob) -> dict[str, Any]:
    """What must match for a resume: plain JSON types, so the state file loads with weights_only."""
    key = {"defense": job.defense, "dataset": job.dataset, "recipe": dataclasses.asdict(job.recipe),
           "max_train_points": job.max_train_points, "val_points": job.val_points,
           "max_batches": job.max_batches}
    plain: dict[str, Any] = json.loads(json.dumps(key))
    return plain


def _load_init(recipe: Recipe, dataset: str, budget: str) -> tuple[nn.Module | None, str | None]:
    """The fine-tuning start named by the recipe: a defense's checkpoint under the same training
    budget (the committed one for `recipe`), or a file."""
    if recipe.init is None:
        return None, None
    if recipe.init in DEFENSES:
        source = DEFENSES.get(recipe.init)
        path = checkpoints.default_path(dataset, recipe.init, source.recipes[dataset].arch, budget)
        if not path.is_file():
            raise BenchError(f"the fine-tuning start {path} does not exist: train it first with "
                             f"`bench train --defense {recipe.init} --dataset {dataset} --budget {budget}`, "
                             "or pass --init FILE")
    else:
        path = Path(recipe.init)
    model, meta = checkpoints.load(path)
    if meta["arch"] != recipe.arch or meta["dataset"] != dataset:
        raise BenchError(f"--init {path} is a {meta['arch']} for {meta['dataset']}, but this job trains a "
                         f"{recipe.arch} for {dataset}")
    return model, str(meta["sha256"])


def build_method(job: TrainJob, steps_per_epoch: int = 0) -> Method:
    defense = DEFENSES.get(job.defense)
    recipe = job.recipe
    spec = bench_data.DATASETS.get(job.dataset)
    init, init_sha = _load_init(recipe, job.dataset, job.budget)
    torch.manual_seed(recipe.seed)
    model = build_arch(recipe.arch, spec)
    try:
        return defense.method(model, recipe, defense.make_params(recipe.params),
                              TrainContext(spec, init, init_sha, steps_per_epoch))
    except (TypeError, ValueError) as exc:
        raise BenchError(f"{job.defense} cannot train this recipe: {exc}") from None


def _restore(job: TrainJob, state_file: Path, method: Method, optimizer: torch.optim.Optimizer,
             scheduler: torch.optim.lr_scheduler.LRScheduler) -> dict[str, Any]:
    """Load an interrupted job's weights, optimizers and schedule; returns its progress."""
    if not job.resume:
        raise BenchError(f"an interrupted run left {state_file}: pass --resume to continue it, "
                         "or delete the file to start over")
    saved = load_tensors(state_file, trust=False, what="training state", trustable=False)
    parts = ("key", "method", "optimizer", "scheduler", "aux_optimizers", "progress")
    if not isinstance(saved, dict) or any(part not in saved for part in parts):
        raise BenchError(f"training state {state_file} is incomplete (not written by `bench train`?): "
                         "delete it to start over")
    if saved["key"] != _job_key(job):
        raise BenchError(f"{state_file} belongs to a different training job (defense, dataset or "
                         "recipe differ); delete it or use the original settings")
    try:
        _load_payload(saved, method, optimizer, scheduler)
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise BenchError(f"training state {state_file} does not fit this job ({first_line(exc)}): "
                         "delete it to start over") from None
    progress_state: dict[str, Any] = saved["progress"]
    problem = _progress_problem(progress_state, job.recipe.epochs)
    if problem:
        raise BenchError(f"training state {state_file} does not fit this job ({problem}): delete it to start over")
    log.info("resuming %s at epoch %d", job.defense, progress_state["epoch"])
    return progress_state


def _progress_problem(progress: Any, epochs: int) -> str | None:
    """What makes a saved progress impossible for this job (None: it could have been written by it):
    the epoch within the recipe, one history entry per finished epoch, the selected epoch among them."""
    if not isinstance(progress, dict) or not {"epoch", "history", "best", "best_state", "seconds"} <= set(progress):
        return "its progress lacks fields"
    epoch, history, best = progress["epoch"], progress["history"], progress["best"]
    if type(epoch) is not int or not 0 <= epoch <= epochs:
        return f"epoch {epoch!r} outside 0 … {epochs}"
    if not isinstance(history, list) or len(history) != epoch or any(
            not isinstance(h, dict) or h.get("epoch") != i + 1 for i, h in enumerate(history)):
        return "its history is not one entry per finished epoch"
    if best is not None and (not isinstance(best, dict) or best.get("epoch") not in range(1, epoch + 1)
                             or not isinstance(progress["best_state"], dict)):
        return "its selected epoch is not one of the finished epochs"
    seconds = progress["seconds"]
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds < float("inf"):
        return f"seconds {seconds!r}"
    return None


def _sidecar(job: TrainJob, defense: Defense, method: Method, state: dict[str, Any], n_train: int,
             n_val: int, spec: bench_data.DatasetSpec, device: torch.device) -> dict[str, Any]:
    recipe = job.recipe
    hp = method.hp
    return {
        "defense": job.defense, "paper": defense.paper, "variant": defense.variant, "dataset": job.dataset,
        "arch": recipe.arch, "recipe": dataclasses.asdict(recipe), "budget": job.budget,
        "hyperparameters": dataclasses.asdict(hp) if hp is not None else {},
        "method": method.describe(), "command": " ".join(["bench", *sys.argv[1:]]),
        "seed": recipe.seed, "train_seconds": round(state["seconds"], 1), "history": state["history"],
        "lr_backoffs": state.get("backoffs", []),
        **({"arch_factory": {"spec": recipe.arch, "note": "code of yours, never imported because a file names it: "
                             f"evaluate with --model {recipe.arch} --weights FILE"}} if is_user_factory(recipe.arch)
           else {}),
        "selection": {"metric": f"held-out {defense.selection_metric} accuracy", "epoch": state["best"]["epoch"],
                      "held_out_points": min(job.val_points, n_val),
                      "source": f"{recipe.holdout_fraction:.0%} of the training set (never the test set)"},
        "held_out": state["best"], "train_points": n_train,
        "world_size": state.get("world_size", 1), "distributed_backend": distributed.backend(),
        "normalization": {"mean": list(spec.mean), "std": list(spec.std), "inside_model": True},
        "provenance": stamp(device),
    }


def _epoch(job: TrainJob, method: Method, optimizer: torch.optim.Optimizer, full: bench_data.ImageSet,
           order: np.ndarray, epoch: int, device: torch.device, rank: int, world: int
           ) -> tuple[list[float], tuple[int, float] | None]:
    """One epoch's steps: the batch losses, and (batch, loss) of a non-finite loss, which is never
    stepped on (training stops there; the saved state stays the last finished epoch's)."""
    recipe = job.recipe
    trained = [p for group in optimizer.param_groups for p in group["params"]]
    batches = list(range(0, len(order), recipe.batch_size))[: job.max_batches]
    losses: list[float] = []
    for b, lo in enumerate(progress(batches, desc=f"{job.defense} epoch {epoch + 1}/{recipe.epochs}",
                                    disable=job.quiet or rank != 0)):
        gen = _generator(recipe, epoch, b, rank)
        x, y = (t.to(device) for t in full.batch(order[lo:lo + recipe.batch_size][rank::world]))
        if recipe.augment:
            x = crop_flip(x, gen)
        loss = method.loss(x, y, gen, epoch)
        if not torch.isfinite(loss.detach()):
            return losses, (b + 1, float(loss.detach()))
        if loss.requires_grad:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            distributed.average_gradients(trained)
            optimizer.step()
        method.after_step()
        losses.append(float(loss.detach()))
    return losses, None


def _payload(job: TrainJob, method: Method, optimizer: torch.optim.Optimizer,
             scheduler: torch.optim.lr_scheduler.LRScheduler, state: dict[str, Any]) -> dict[str, Any]:
    """The exact-resume state after an epoch (what `_restore` reads)."""
    return {"key": _job_key(job), "method": method.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "progress": state,
            "aux_optimizers": {k: o.state_dict() for k, o in method.aux_optimizers.items()}}


def _load_payload(saved: dict[str, Any], method: Method, optimizer: torch.optim.Optimizer,
                  scheduler: torch.optim.lr_scheduler.LRScheduler) -> None:
    """Put weights, optimizers and schedule back as `_payload` saved them."""
    method.load_state_dict(saved["method"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    for name, state in saved["aux_optimizers"].items():
        method.aux_optimizers[name].load_state_dict(state)


def _back_off(job: TrainJob, epoch: int, batch: int, loss: float, last_good: dict[str, Any], method: Method,
              optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR,
              state: dict[str, Any], world: int) -> None:
    """The divergence rule (`BACKOFF`): back to the state after the last finished epoch, the learning
    rate scaled by BACKOFF for the rest of the run; an error once MAX_BACKOFFS are spent."""
    where = f"{job.defense} diverged in epoch {epoch + 1}, batch {batch} (loss {loss:g})"
    backoffs = state.get("backoffs", [])
    if world > 1 or len(backoffs) >= MAX_BACKOFFS:
        raise BenchError(f"{where}; the resume state after epoch {epoch} is kept "
                         + (f"(the learning rate was already halved {len(backoffs)} times): a smaller --lr, or report it"
                            if world == 1 else "(rolling back is single-process only): a smaller --lr, or report it"))
    _load_payload(last_good, method, optimizer, scheduler)
    state.clear()
    state.update(copy.deepcopy(last_good["progress"]))
    state["lr_scale"] = state.get("lr_scale", 1.0) * BACKOFF
    state["backoffs"] = [*backoffs, {"epoch": epoch + 1, "batch": batch, "lr_scale": state["lr_scale"]}]
    for group, base in zip(optimizer.param_groups, scheduler.base_lrs, strict=True):
        group["lr"] = base * job.recipe.lr_factor(epoch) * state["lr_scale"]
    log.warning("%s: back to the state after epoch %d, learning rate ×%g for the rest of the run", where, epoch,
                state["lr_scale"])


def train(job: TrainJob) -> dict[str, Any]:
    """Train, select the best epoch on held-out data, write checkpoint + sidecar; returns the sidecar."""
    rank, world = distributed.setup()
    device = resolve_device(job.device)
    defense: Defense = DEFENSES.get(job.defense)
    recipe = job.recipe
    spec = bench_data.DATASETS.get(job.dataset)
    full = bench_data.load(job.dataset, bench_data.Split.TRAIN, job.data_dir)
    train_idx, val_idx = bench_data.holdout_split(len(full), recipe.holdout_fraction)
    limit = min(x for x in (recipe.train_points, job.max_train_points, len(train_idx)) if x)
    train_idx = train_idx[:limit]
    val = full.subset(val_idx)
    val_eps = recipe.eps if recipe.eps > 0 else spec.default_threat(Norm.LINF).eps

    batches = math.ceil(len(train_idx) / recipe.batch_size)
    method = build_method(job, min(batches, job.max_batches or batches)).to(device)
    optimizer = torch.optim.SGD(method.param_groups(), lr=recipe.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay)
    state: dict[str, Any] = {"epoch": 0, "history": [], "best": None, "best_state": None, "seconds": 0.0,
                             "world_size": world, "lr_scale": 1.0, "backoffs": []}
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda epoch: recipe.lr_factor(epoch) * state.get("lr_scale", 1.0))
    state_file = _state_path(job)
    if state_file.exists():
        state.update(_restore(job, state_file, method, optimizer, scheduler))
    distributed.barrier()

    metric = defense.selection_metric
    last_good = copy.deepcopy(_payload(job, method, optimizer, scheduler, state))
    while state["epoch"] < recipe.epochs:
        epoch = state["epoch"]
        start = time.time()
        method.train()
        method.before_epoch(epoch)
        order = np.random.default_rng([recipe.seed, epoch]).permutation(train_idx)
        losses, diverged = _epoch(job, method, optimizer, full, order, epoch, device, rank, world)
        if diverged is not None:
            _back_off(job, epoch, *diverged, last_good, method, optimizer, scheduler, state, world)
            if rank == 0:
                checkpoints.atomic_torch_save(_payload(job, method, optimizer, scheduler, state), state_file)
            last_good = copy.deepcopy(_payload(job, method, optimizer, scheduler, state))
            continue
        scheduler.step()
        distributed.average_buffers(method)
        deployed = method.deployed()
        scores = validate(deployed, val, val_eps, job.val_points, certify=metric == "certified")
        state["seconds"] += time.time() - start
        state["history"].append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                                 "lr": optimizer.param_groups[0]["lr"], **{f"val_{k}": v for k, v in scores.items()}})
        if method.selectable(epoch) and (state["best"] is None or scores[metric] >= state["best"][metric]):
            state["best"] = {"epoch": epoch + 1, **scores}
            state["best_state"] = copy.deepcopy(deployed.state_dict())
        state["epoch"] = epoch + 1
        log.info("epoch %d: loss %.4f, held-out %s", epoch + 1, np.mean(losses), scores)
        payload = _payload(job, method, optimizer, scheduler, state)
        if rank == 0:
            checkpoints.atomic_torch_save(payload, state_file)
        last_good = copy.deepcopy(payload)
        distributed.barrier()

    if state["best"] is None:
        raise BenchError(f"{job.defense}: no epoch could be selected (too few epochs for its stages?)")
    final = build_arch(recipe.arch, spec)
    final.load_state_dict(state["best_state"])
    sidecar: dict[str, Any] = {}
    if rank == 0:
        meta = _sidecar(job, defense, method, state, int(len(train_idx)), len(val_idx), spec, device)
        sidecar = checkpoints.save(final, job.out, meta)
        state_file.unlink(missing_ok=True)
    distributed.barrier()
    return sidecar
