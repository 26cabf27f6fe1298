"""`evaluate(cfg)`: run every attack over the evaluation subset and write the run record.

Per example the harness keeps: clean-correct, robust under each attack, which attack (or
AutoAttack component) broke it first, and the true-class margin at each attack's output (a
fingerprint of what the attack did, which the CI gate compares); the worst case is robust under
all attacks. Each attack
runs as a cascade of stages over the still-robust points, batch by batch; progress is saved
after every batch so that `--resume` continues to identical flags.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import data
from bench.attacks import Attack
from bench.config import RunConfig
from bench.guards import check_input_range, preflight
from bench.model import ModelUnderTest
from bench.progress import progress
from bench.provenance import stamp
from bench.records import ResumeState, write_record
from bench.resolve import ResolvedModel, resolve_model
from bench.schema import WORST_CASE, portable_path
from bench.stats import wilson_interval
from bench.verify import verify_successes

MARGIN_DECIMALS = 4  # per-example margins at the attack's output: a fingerprint, not a statistic


@dataclass
class RunResult:
    record_path: Path
    record: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        r = self.record
        robust = {label: res["robust_accuracy"] for label, res in r["attacks"].items()}
        robust[WORST_CASE] = r["worst_case"]["robust_accuracy"]
        return {"dataset": r["data"]["dataset"], "defense": r["model"]["defense"],
                "checkpoint": r["model"]["path"], "n": r["data"]["n"],
                "threat": r["threat"], "clean_accuracy": r["clean"]["accuracy"],
                "robust_accuracy": robust, "warnings": r["warnings"], "record": str(self.record_path)}


def _fresh_progress(clean_correct: torch.Tensor) -> dict[str, Any]:
    return {"alive": clean_correct.int().tolist(), "broken_by": [None] * len(clean_correct),
            "margin": [None] * len(clean_correct),
            "stage": 0, "batch": 0, "stage_alive": None, "forward": 0, "backward": 0,
            "seconds": 0.0, "warnings": []}


def _run_attack(model: ModelUnderTest, attack: Attack, x: torch.Tensor, y: torch.Tensor,
                cfg: RunConfig, state: ResumeState) -> dict[str, Any]:
    """Run one attack's stages over the points still robust to it; returns its progress entry."""
    prog = state.progress[attack.label]
    prog.setdefault("margin", [None] * len(prog["alive"]))  # states saved before margins were kept
    alive = torch.tensor(prog["alive"], dtype=torch.bool)
    device = model.device
    for s, stage in enumerate(attack.stages()):
        if s < prog["stage"]:
            continue
        if prog["stage_alive"] is None:
            prog["stage_alive"] = alive.int().tolist()
        todo = torch.tensor(prog["stage_alive"], dtype=torch.bool).nonzero().squeeze(1)
        chunks = todo.split(cfg.batch_size) if todo.numel() else ()  # split() of nothing gives one empty chunk
        name = getattr(stage, "component", stage.label)
        for b in progress(range(prog["batch"], len(chunks)), desc=f"{attack.label} {name}",
                          disable=cfg.quiet, total=len(chunks) - prog["batch"]):
            ids = chunks[b]
            before, start = model.passes.snapshot(), time.time()
            xb, yb = x[ids].to(device), y[ids].to(device)
            out = stage.run(model, xb, yb, cfg.threat, stage.batch_seed(cfg.seed, b))
            spent = model.passes.since(before)
            verify_successes(model, xb, out.x_adv, yb, out.success, cfg.threat, attack.label)
            margins = model.true_class_margin(out.x_adv, yb).tolist()
            for j, point in enumerate(ids.tolist()):
                prog["margin"][point] = round(margins[j], MARGIN_DECIMALS)
            for j in out.success.cpu().nonzero().squeeze(1).tolist():
                point, component = int(ids[j]), out.broken_by[j] if out.broken_by else None
                alive[point] = False
                prog["broken_by"][point] = f"{attack.label}/{component}" if component else attack.label
            prog["warnings"] += [w for w in out.warnings if w not in prog["warnings"]]
            prog.update(alive=alive.int().tolist(), batch=b + 1, forward=prog["forward"] + spent.forward,
                        backward=prog["backward"] + spent.backward,
                        seconds=prog["seconds"] + time.time() - start)
            state.save()
        prog.update(stage=s + 1, batch=0, stage_alive=None)
        state.save()
    return prog


def _accuracy(flags: np.ndarray, key: str = "robust_accuracy") -> dict[str, Any]:
    n, k = int(flags.size), int(flags.sum())
    return {key: k / n, "count": k, "ci95": list(wilson_interval(k, n))}


def _flags(values: np.ndarray) -> str:
    return "".join("1" if v else "0" for v in values)


def _build_record(cfg: RunConfig, model: ResolvedModel, attacks: list[Attack], indices: np.ndarray,
                  y: torch.Tensor, clean_correct: np.ndarray, progress_by_attack: dict[str, Any],
                  guard_warnings: list[str], device: torch.device, resumed: bool) -> dict[str, Any]:
    n = len(indices)
    robust = {a.label: np.array(progress_by_attack[a.label]["alive"], dtype=bool) & clean_correct
              for a in attacks}
    worst = np.logical_and.reduce([clean_correct, *robust.values()])
    first_broken: list[str | None] = [None] * n
    for a in attacks:
        for i, who in enumerate(progress_by_attack[a.label]["broken_by"]):
            if who is not None and first_broken[i] is None:
                first_broken[i] = who
    per_attack = {}
    for a in attacks:
        prog = progress_by_attack[a.label]
        per_attack[a.label] = {
            **_accuracy(robust[a.label]), "attack": a.name, "protocol": a.protocol, "adaptive": a.adaptive,
            "config": dataclasses.asdict(a.config),
            "stages": [getattr(s, "component", s.label) for s in a.stages()],
            "seconds": round(prog["seconds"], 3),
            "passes": {"forward": prog["forward"], "backward": prog["backward"],
                       "forward_per_example": prog["forward"] / n, "backward_per_example": prog["backward"] / n},
            "warnings": prog["warnings"]}
    warnings = guard_warnings + [w for a in attacks for w in progress_by_attack[a.label]["warnings"]]
    return {
        "config": {"attacks": cfg.attacks_text, "seed": cfg.seed, "batch_size": cfg.batch_size,
                   "device": cfg.device, "resumed": resumed},
        "threat": {"norm": cfg.threat.norm.value, "eps": cfg.threat.eps},
        "purpose": cfg.purpose.value,
        "model": {"label": model.label, "defense": cfg.defense or model.sidecar.get("defense"),
                  "path": portable_path(model.path),
                  "sha256": model.sha256, "arch": model.sidecar.get("arch"),
                  "paper": model.sidecar.get("paper"), "variant": model.sidecar.get("variant"),
                  "hyperparameters": model.sidecar.get("hyperparameters"),
                  "training_budget": _training_budget(model.sidecar), "trained_by": model.sidecar.get("command"),
                  "source": model.source, "input": model.input_description()},
        "data": {"dataset": cfg.dataset, "split": "test", "n": n,
                 "selection": "first-n" if cfg.sample_seed is None else f"sample-seed={cfg.sample_seed}",
                 "sample_seed": cfg.sample_seed,
                 "index_sha256": data.hash_indices(indices)},
        "provenance": {**stamp(device), "precision": "fp32"},
        "clean": _accuracy(clean_correct, "accuracy"), "attacks": per_attack, "worst_case": _accuracy(worst),
        "warnings": warnings,
        "per_example": {"index": indices.tolist(), "label": y.tolist(), "clean_correct": _flags(clean_correct),
                        "robust": {label: _flags(f) for label, f in robust.items()},
                        "worst_case": _flags(worst), "broken_first_by": first_broken,
                        "margin": {a.label: progress_by_attack[a.label]["margin"] for a in attacks}},
    }


def _training_budget(sidecar: dict[str, Any]) -> dict[str, Any] | None:
    """Epochs × training points and the inner attack, so leaderboards can show what a model cost."""
    recipe = sidecar.get("recipe")
    if not recipe:
        return None
    return {"epochs": recipe.get("epochs"), "train_points": sidecar.get("train_points"),
            "attack_steps": recipe.get("attack_steps") if recipe.get("eps") else 0,
            "init": recipe.get("init"), "seconds": sidecar.get("train_seconds")}


def under_test(resolved: ResolvedModel, num_classes: int, device: torch.device) -> ModelUnderTest:
    """The attack-facing wrapper, with the model's declared normalization inside it."""
    norm = resolved.preprocessing.pixel_normalization()
    return ModelUnderTest(resolved.module.to(device), num_classes, *(norm or (None, None)))


def evaluate(cfg: RunConfig) -> RunResult:
    attacks = cfg.attacks()
    device = cfg.torch_device()
    resolved = resolve_model(cfg)
    spec = data.DATASETS.get(cfg.dataset)
    test = data.load(cfg.dataset, data.Split.TEST, cfg.data_dir)
    indices = data.select_indices(len(test), cfg.n, cfg.sample_seed)
    x, y = test.batch(indices)
    check_input_range(x)
    model = under_test(resolved, spec.num_classes, device)
    with model.attack_mode():
        guard_warnings = preflight(model, x[:256], allow_randomized=cfg.allow_randomized)
        clean_correct = (model.predict(x) == y).numpy()
        key = {"model_sha256": resolved.sha256, "index_sha256": data.hash_indices(indices),
               "dataset": cfg.dataset, "threat": [cfg.threat.norm.value, cfg.threat.eps],
               "attacks": [[a.protocol, a.label, repr(a.config)] for a in attacks],
               "seed": cfg.seed, "batch_size": cfg.batch_size}
        state = ResumeState(cfg.results_dir / ".state", f"{cfg.dataset}-{resolved.label}", key)
        for attack in attacks:
            state.progress[attack.label] = _fresh_progress(torch.from_numpy(clean_correct))
        state.start(cfg.resume)
        for attack in attacks:
            _run_attack(model, attack, x, y, cfg, state)
    record = _build_record(cfg, resolved, attacks, indices, y, clean_correct, state.progress,
                           [*cfg.extra_warnings, *guard_warnings], device, state.resumed)
    path = write_record(cfg.results_dir, record, f"{cfg.dataset}-{resolved.label}")
    state.finish()
    return RunResult(path, record)
