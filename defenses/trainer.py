"""The shared trainer: SGD + step schedule, per-epoch held-out selection, resumable, sidecar out.

Resume is exact on CPU: shuffling and every random draw are derived from (seed, epoch, batch),
and the model/optimizer/scheduler state is saved after every epoch, so an interrupted run
continued with `--resume` ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench import data as bench_data
from bench.attacks.gradient import pgd_iterates
from bench.attacks.losses import Loss
from bench.errors import BenchError
from bench.progress import progress
from bench.provenance import stamp
from bench.threat import Norm
from defenses import checkpoints
from defenses.archs import ARCHS
from defenses.registry import DEFENSES, Defense, Recipe

log = logging.getLogger(__name__)


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


def resolve_job(defense: str, dataset: str, overrides: dict[str, Any], out: Path | None = None,
                **kwargs: Any) -> TrainJob:
    entry = DEFENSES.get(defense)
    if dataset not in entry.recipes:
        raise BenchError(f"{defense} has no recipe for {dataset} (recipes: {', '.join(entry.recipes)})")
    recipe = entry.recipes[dataset].replace(**overrides)
    ARCHS.get(recipe.arch)
    return TrainJob(defense, dataset, recipe, out or checkpoints.default_path(dataset, defense, recipe.arch),
                    **kwargs)


def _generator(recipe: Recipe, epoch: int, batch: int) -> torch.Generator:
    return torch.Generator().manual_seed(recipe.seed * 1_000_003 + epoch * 100_003 + batch)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random crop with 4-pixel zero padding and a random horizontal flip, per example."""
    n, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    dx, dy = torch.randint(0, 9, (n,), generator=gen), torch.randint(0, 9, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    out[flip] = out[flip].flip(-1)
    return out


def validate(model: nn.Module, val: bench_data.ImageSet, eps: float, points: int) -> dict[str, float]:
    """Clean and PGD-10 accuracy on the held-out split (the only data used to select checkpoints)."""
    model.eval()
    x, y = val.batch(slice(0, points))
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
    return metrics


def _state_path(job: TrainJob) -> Path:
    return job.out.with_suffix(".train-state.pt")


def _job_key(job: TrainJob) -> dict[str, Any]:
    return {"defense": job.defense, "dataset": job.dataset, "recipe": dataclasses.asdict(job.recipe),
            "max_train_points": job.max_train_points, "val_points": job.val_points}


def _restore(job: TrainJob, state_file: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
             scheduler: torch.optim.lr_scheduler.LRScheduler) -> dict[str, Any]:
    """Load an interrupted job's weights, optimizer and schedule; returns its progress."""
    if not job.resume:
        raise BenchError(f"an interrupted run left {state_file}: pass --resume to continue it, "
                         "or delete the file to start over")
    saved = torch.load(state_file, map_location="cpu", weights_only=True)
    if saved["key"] != _job_key(job):
        raise BenchError(f"{state_file} belongs to a different training job (defense, dataset or "
                         "recipe differ); delete it or use the original settings")
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    log.info("resuming %s at epoch %d", job.defense, saved["progress"]["epoch"])
    progress: dict[str, Any] = saved["progress"]
    return progress


def train(job: TrainJob) -> dict[str, Any]:
    """Train, select the best epoch on held-out data, write checkpoint + sidecar; returns the sidecar."""
    defense: Defense = DEFENSES.get(job.defense)
    recipe = job.recipe
    spec = bench_data.DATASETS.get(job.dataset)
    full = bench_data.load(job.dataset, bench_data.Split.TRAIN, job.data_dir)
    train_idx, val_idx = bench_data.holdout_split(len(full), recipe.holdout_fraction)
    if job.max_train_points:
        train_idx = train_idx[: job.max_train_points]
    val = full.subset(val_idx)
    val_eps = recipe.eps if recipe.eps > 0 else spec.default_threat(Norm.LINF).eps

    torch.manual_seed(recipe.seed)
    model = ARCHS.get(recipe.arch)(spec)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(recipe.milestones), recipe.gamma)
    state: dict[str, Any] = {"epoch": 0, "history": [], "best": None, "best_state": None, "seconds": 0.0}

    state_file = _state_path(job)
    if state_file.exists():
        state = _restore(job, state_file, model, optimizer, scheduler)

    metric = defense.selection_metric
    while state["epoch"] < recipe.epochs:
        epoch = state["epoch"]
        start = time.time()
        model.train()
        order = np.random.default_rng([recipe.seed, epoch]).permutation(train_idx)
        batches = range(0, len(order), recipe.batch_size)
        losses = []
        for b, lo in enumerate(progress(batches, desc=f"{job.defense} epoch {epoch + 1}/{recipe.epochs}",
                                        disable=job.quiet)):
            gen = _generator(recipe, epoch, b)
            x, y = full.batch(order[lo:lo + recipe.batch_size])
            if recipe.augment:
                x = _augment(x, gen)
            loss = defense.loss(model, x, y, recipe, gen)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        scheduler.step()
        scores = validate(model, val, val_eps, job.val_points)
        state["seconds"] += time.time() - start
        state["history"].append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                                 "lr": optimizer.param_groups[0]["lr"], **{f"val_{k}": v for k, v in scores.items()}})
        if state["best"] is None or scores[metric] >= state["best"][metric]:
            state["best"] = {"epoch": epoch + 1, **scores}
            state["best_state"] = copy.deepcopy(model.state_dict())
        state["epoch"] = epoch + 1
        log.info("epoch %d: loss %.4f, held-out %s", epoch + 1, np.mean(losses), scores)
        payload = {"key": _job_key(job), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                   "scheduler": scheduler.state_dict(), "progress": state}
        checkpoints.atomic_torch_save(payload, state_file)

    model.load_state_dict(state["best_state"])
    meta = {
        "defense": job.defense, "paper": defense.paper, "dataset": job.dataset, "arch": recipe.arch,
        "recipe": dataclasses.asdict(recipe), "command": " ".join(["bench", *sys.argv[1:]]),
        "seed": recipe.seed, "train_seconds": round(state["seconds"], 1), "history": state["history"],
        "selection": {"metric": f"held-out {metric} accuracy", "epoch": state["best"]["epoch"],
                      "held_out_points": min(job.val_points, len(val_idx)),
                      "source": f"{recipe.holdout_fraction:.0%} of the training set (never the test set)"},
        "held_out": state["best"], "train_points": int(len(train_idx)),
        "normalization": {"mean": list(spec.mean), "std": list(spec.std), "inside_model": True},
        "provenance": stamp(torch.device("cpu")),
    }
    sidecar = checkpoints.save(model, job.out, meta)
    state_file.unlink(missing_ok=True)
    return sidecar
