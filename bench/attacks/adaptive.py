"""Adaptive attacks: what a defense's structure calls for beyond the standard attacks.

A defense shows extra structure through small optional interfaces of its module, never by the
attack importing the defense (docs/design.md, "Contracts"):

- `forward_all(x, labels=None, soft_mask=None) -> (logits, [auxiliary logits per block])`: a
  network that classifies inside itself (ANCRA's reverse attention). `soft_mask=T` must keep
  every forward value and route the backward pass through softmax(a/T) instead of a hard argmax.
- a submodule with a boolean attribute `scaled`: logits trained at another scale than deployed
  (SPAT's cosine head); switching it on gives the training-scale logits.

Defenses list what applies to them (`Defense.adaptive_attacks`); `--attack adaptive` expands to
that list plus what every model gets: a transfer attack from a surrogate checkpoint and a long
Square run. Every attack here judges success on the deployed model's own output.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.attacks.base import (
    ATTACKS,
    Attack,
    AttackContext,
    AttackEntry,
    AttackOutput,
    Role,
)
from bench.attacks.gradient import PGD, Objective, PGDConfig
from bench.attacks.losses import per_example
from bench.errors import BenchError
from bench.loading.model import ModelUnderTest
from bench.threat import ThreatModel

AUX_INTERFACE = "forward_all"
SCALE_FLAG = "scaled"
SOFT_MASK_TEMPERATURE = 1.0
View = Callable[[nn.Module, torch.Tensor], torch.Tensor]  # (module, normalized input) → logits


def _require_aux(module: nn.Module, label: str) -> None:
    if not callable(getattr(module, AUX_INTERFACE, None)):
        raise BenchError(f"{label} needs a model with auxiliary logits (`{AUX_INTERFACE}`, e.g. ANCRA's "
                         f"reverse attention); {type(module).__name__} has none")


def first_aux_logits(module: nn.Module, z: torch.Tensor) -> torch.Tensor:
    logits: torch.Tensor = module.forward_all(z)[1][0]  # type: ignore[operator]
    return logits


def soft_mask_logits(module: nn.Module, z: torch.Tensor) -> torch.Tensor:
    logits: torch.Tensor = module.forward_all(z, soft_mask=SOFT_MASK_TEMPERATURE)[0]  # type: ignore[operator]
    return logits


@contextlib.contextmanager
def training_scale(module: nn.Module) -> Iterator[None]:
    """Every submodule with a `scaled` flag switched on for the duration."""
    flagged = [m for m in module.modules() if isinstance(getattr(m, SCALE_FLAG, None), bool)]
    saved = [getattr(m, SCALE_FLAG) for m in flagged]
    for m in flagged:
        setattr(m, SCALE_FLAG, True)
    try:
        yield
    finally:
        for m, flag in zip(flagged, saved, strict=True):
            setattr(m, SCALE_FLAG, flag)


def _require_scale(module: nn.Module, label: str) -> None:
    if not any(isinstance(getattr(m, SCALE_FLAG, None), bool) for m in module.modules()):
        raise BenchError(f"{label} needs a model with a `{SCALE_FLAG}` logit-scale switch (SPAT's cosine "
                         f"head); {type(module).__name__} has none")


def scaled_logits(module: nn.Module, z: torch.Tensor) -> torch.Tensor:
    with training_scale(module):
        logits: torch.Tensor = module(z)
    return logits


class ViewModule(nn.Module):
    """What the official APGD code attacks: a model whose logits are one view of the defense."""

    def __init__(self, model: ModelUnderTest, view: View) -> None:
        super().__init__()
        self.model = model
        self.view = view

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.through(self.view, x)


@dataclass(frozen=True)
class ViewAPGDConfig:
    """Official APGD settings of AutoAttack standard: 100 iterations, 1 restart, 9 targets."""

    n_iter: int = 100
    n_target_classes: int = 9

    def __post_init__(self) -> None:
        if self.n_iter < 1 or self.n_target_classes < 1:
            raise ValueError("n_iter and n_target_classes must be at least 1")


class ViewAPGDStage(Attack):
    """Official APGD-CE or APGD-T (pyautoattack) on a view; success judged on the deployed logits."""

    adaptive = True

    def __init__(self, label: str, config: ViewAPGDConfig, view: View, component: str,
                 requires: Callable[[nn.Module, str], None] | None) -> None:
        super().__init__(label, 1, config)
        self.view, self.component, self.requires = view, component, requires

    def run(self, model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor,
            threat: ThreatModel, seed: int) -> AttackOutput:
        from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted

        if self.requires is not None:
            self.requires(model.module, self.label)
        cfg = self.config
        view = ViewModule(model, self.view)
        common: dict[str, Any] = dict(n_iter=cfg.n_iter, norm=threat.norm.autoattack_name, n_restarts=1,
                                      eps=threat.eps, seed=seed, device=x.device)
        if self.component == "apgd-t":
            attack: Any = APGDAttack_targeted(view, n_target_classes=min(cfg.n_target_classes,
                                                                          model.num_classes - 1), **common)
        else:
            attack = APGDAttack(view, loss="ce", **common)
        x_adv = attack.perturb(x, y).detach()
        with torch.no_grad():
            success = model(x_adv).argmax(1) != y
        return AttackOutput(x_adv, success, [self.component] * x.shape[0])


class ViewAPGD(Attack):
    """APGD-CE, then APGD-T on what survives, both on one view of the defense."""

    adaptive = True

    def __init__(self, label: str, config: ViewAPGDConfig, view: View,
                 requires: Callable[[nn.Module, str], None] | None = None) -> None:
        super().__init__(label, 1, config)
        self._stages = [ViewAPGDStage(label, config, view, c, requires) for c in ("apgd-ce", "apgd-t")]

    def stages(self) -> list[Attack]:
        return list(self._stages)

    def run(self, model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor,
            threat: ThreatModel, seed: int) -> AttackOutput:
        raise NotImplementedError("a cascade across batches: bench.evaluation.harness runs its stages()")


@dataclass(frozen=True)
class RASumConfig(PGDConfig):
    steps: int = 50


class RASum(PGD[RASumConfig]):
    """PGD on CE(final) + Σ_b CE(aux_b): ANCRA's own training attack, aimed at the deployed model."""

    adaptive = True

    def objective(self, model: ModelUnderTest, y: torch.Tensor) -> Objective:
        _require_aux(model.module, self.label)

        def final_plus_aux(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            final, aux = model.through(lambda m, v: m.forward_all(v), z)  # type: ignore[operator]
            loss = per_example(self.config.loss, final, y)
            for a in aux:
                loss = loss + F.cross_entropy(a.float(), y, reduction="none")
            return final, loss

        return final_plus_aux


@dataclass(frozen=True)
class TransferConfig(PGDConfig):
    """PGD on a surrogate (a registered defense's committed checkpoint, or a checkpoint path)."""

    surrogate: str = ""  # empty: the context's best-ranked surrogate, written into the config on binding
    steps: int = 50


class Transfer(PGD[TransferConfig]):
    """Ascends the surrogate's loss; every iterate is checked on the model under test (forward
    only: a black-box attacker's queries), so the best transferred point is kept."""

    adaptive = True

    def bind(self, context: AttackContext) -> None:
        """Only find and check the surrogate's file here (configs build attacks often); its
        weights load once, when the attack first runs."""
        if context.surrogates is None or not (self.config.surrogate or context.surrogates.ranked):
            raise BenchError(f"transfer:{self.config.surrogate}: no surrogate checkpoints in this context")
        if not self.config.surrogate:
            self.config = dataclasses.replace(self.config, surrogate=context.surrogates.ranked[0])
        self._surrogates = context.surrogates
        self._surrogate_path = context.surrogates.locate(self.config.surrogate)
        self._surrogate: nn.Module | None = None

    def objective(self, model: ModelUnderTest, y: torch.Tensor) -> Objective:
        if self._surrogate is None:
            self._surrogate = self._surrogates.load(self._surrogate_path)
        surrogate = self._surrogate.to(model.device)
        loss = self.config.loss

        def on_surrogate(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            with torch.no_grad():
                target = model(z)
            return target, per_example(loss, surrogate(z), y)

        return on_surrogate


@dataclass(frozen=True)
class LongSquareConfig:
    queries: int = 10_000  # twice AutoAttack standard's 5000
    p_init: float = 0.8

    def __post_init__(self) -> None:
        if self.queries < 1 or not 0 < self.p_init <= 1:
            raise ValueError("queries must be at least 1 and p_init in (0, 1]")


class LongSquare(Attack[LongSquareConfig]):
    """The official Square attack (margin loss) with a larger query budget: gradient-free, so
    masked gradients cannot hide a model from it."""

    adaptive = True

    def run(self, model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor,
            threat: ThreatModel, seed: int) -> AttackOutput:
        from pyautoattack.square import SquareAttack

        cfg = self.config
        square = SquareAttack(model, norm=threat.norm.autoattack_name, n_queries=cfg.queries, eps=threat.eps,
                              p_init=cfg.p_init, n_restarts=1, seed=seed, loss="margin", device=x.device)
        with torch.no_grad():
            x_adv = square.perturb(x, y).detach()
            success = model(x_adv).argmax(1) != y
        return AttackOutput(x_adv, success)


ATTACKS.add("ra-sum", AttackEntry(
    "adaptive (reverse attention): PGD-50 on CE(final) + Σ CE(auxiliary logits), ANCRA's training attack",
    RASumConfig, lambda cfg: RASum("ra-sum", 2, cfg)))
ATTACKS.add("ra-aux", AttackEntry(
    "adaptive (reverse attention): official APGD-CE then APGD-T on the first RA block's auxiliary logits",
    ViewAPGDConfig, lambda cfg: ViewAPGD("ra-aux", cfg, first_aux_logits, _require_aux)))
ATTACKS.add("ra-bpda", AttackEntry(
    "adaptive (reverse attention): official APGD-CE then APGD-T with a soft-mask backward (softmax of "
    "the auxiliary logits instead of the hard argmax; forward unchanged)",
    ViewAPGDConfig, lambda cfg: ViewAPGD("ra-bpda", cfg, soft_mask_logits, _require_aux)))
ATTACKS.add("spat-scaled", AttackEntry(
    "adaptive (cosine head): official APGD-CE then APGD-T on the training-scale (s·cos) logits",
    ViewAPGDConfig, lambda cfg: ViewAPGD("spat-scaled", cfg, scaled_logits, _require_scale)))
ATTACKS.add("transfer", AttackEntry(
    "adaptive (any model): PGD-50 on a surrogate checkpoint (transfer:DEFENSE or transfer:PATH, "
    "default: the best-ranked surrogate defense), each iterate checked on the model", TransferConfig,
    lambda cfg: Transfer("transfer", 2, cfg), positional="surrogate", roles=frozenset({Role.BLACK_BOX})))
ATTACKS.add("square-long", AttackEntry(
    "adaptive (any model): official Square, margin loss, 10000 queries (square-long:queries=N)",
    LongSquareConfig, lambda cfg: LongSquare("square-long", 1, cfg), roles=frozenset({Role.BLACK_BOX})))
