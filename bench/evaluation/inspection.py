"""`bench inspect`: what the suite knows about a model before attacking it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from bench import data
from bench.attacks.adaptive import AUX_INTERFACE, SCALE_FLAG
from bench.errors import BenchError, ModelGuardError
from bench.evaluation.config import RunConfig
from bench.evaluation.harness import under_test
from bench.evaluation.resolve import ResolvedModel
from bench.loading.guards import check_input_range, preflight

SAMPLE_POINTS = 64


def _sample(cfg: RunConfig) -> tuple[torch.Tensor, str]:
    """Real test points when the dataset is on disk, else uniform noise of its shape (and say so)."""
    spec = data.DATASETS.get(cfg.dataset)
    try:
        test = data.load(cfg.dataset, data.Split.TEST, cfg.data_dir)
        x, _ = test.batch(data.select_indices(len(test), SAMPLE_POINTS, None))
        check_input_range(x)
        return x, f"{SAMPLE_POINTS} {cfg.dataset} test points"
    except BenchError:
        gen = torch.Generator().manual_seed(0)
        return torch.rand((SAMPLE_POINTS, *spec.shape), generator=gen), \
            f"{SAMPLE_POINTS} uniform-noise inputs ({cfg.dataset} is not on disk)"


@dataclass(frozen=True)
class Inspection:
    """What the suite knows about a model: one (what, value) row per fact, and whether the model
    passed the guards every evaluation runs first (logit shape, finite, not probabilities,
    deterministic unless allowed)."""

    rows: tuple[tuple[str, str], ...]
    guards_passed: bool

    def __str__(self) -> str:
        return "\n".join(f"{key:20s} {value}" for key, value in self.rows)


def describe(resolved: ResolvedModel, cfg: RunConfig) -> Inspection:
    """`cfg`: the dataset, device, data folder and randomness allowance; its attacks are the ones
    `--attack adaptive` would run on this model."""
    spec = data.DATASETS.get(cfg.dataset)
    module = resolved.module
    params = sum(p.numel() for p in module.parameters())
    interfaces = []
    if callable(getattr(module, AUX_INTERFACE, None)):
        interfaces.append(f"auxiliary logits (`{AUX_INTERFACE}`: reverse attention)")
    if any(isinstance(getattr(m, SCALE_FLAG, None), bool) for m in module.modules()):
        interfaces.append(f"logit-scale switch (`{SCALE_FLAG}`: cosine head)")
    side: dict[str, Any] = resolved.sidecar
    adaptive = [a.label for a in cfg.attacks()]
    model = under_test(resolved, spec.num_classes, cfg.torch_device())
    x, where = _sample(cfg)
    with model.attack_mode():
        try:
            warnings = preflight(model, x, allow_randomized=cfg.allow_randomized)
            with torch.no_grad():
                classes = int(model(x[:2].to(model.device)).shape[1])
            guards = "passed (logits of shape N×K, K = dataset classes, finite, not probabilities, deterministic)"
            guards += "".join(f"; warning: {w}" for w in warnings)
            passed = True
        except ModelGuardError as exc:
            classes, guards, passed = spec.num_classes, f"FAILED: {exc}", False
    rows = (
        ("model", resolved.label), ("source", resolved.source), ("file", str(resolved.path)),
        ("sha256", resolved.sha256),
        ("architecture", f"{type(module).__name__}" + (f" ({side['arch']})" if side.get("arch") not in
                                                       (None, type(module).__name__) else "")),
        ("parameters", f"{params:,}"), ("defense", str(side.get("defense") or "–")),
        ("dataset", f"{cfg.dataset}: input {spec.shape}, {spec.num_classes} classes; the model returns {classes}"),
        ("input", resolved.input_description()),
        ("adaptive interfaces", ", ".join(interfaces) or "none"),
        ("--attack adaptive", ", ".join(adaptive)),
        ("guards", f"{guards} — on {where}"),
    )
    return Inspection(rows, passed)
