"""White-box gradient attacks: FGSM, PGD (CE or margin loss), and `cw` = the C&W margin by PGD.

`pgd_iterates` is also the training attack of the adversarial-training defenses, so the attack
we train against and the attack we evaluate with are one piece of code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

from bench.attacks.base import ATTACKS, Attack, AttackEntry, AttackOutput, BoardColumn, Role
from bench.attacks.losses import Loss, per_example
from bench.attacks.noise import ball_start, example_generators
from bench.loading.model import ModelUnderTest
from bench.norms import ascent_step, project, random_start
from bench.threat import Norm, ThreatModel

Forward = Callable[[torch.Tensor], torch.Tensor]
# x_adv → (logits that decide success, per-example loss to ascend): adaptive attacks ascend one
# thing (a surrogate's loss, auxiliary logits) while success is judged on the model's output
Objective = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def pgd_iterates(forward: Forward, x: torch.Tensor, y: torch.Tensor, *, norm: Norm, eps: float,
                 steps: int, step_size: float, loss: Loss, gen: torch.Generator | None,
                 random_init: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Projected gradient ascent on `loss` of `forward`'s logits (see `ascend`)."""
    def objective(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = forward(z)
        return logits, per_example(loss, logits, y)

    if random_init:
        assert gen is not None, "a random start needs a generator"
        start = random_start(norm, x, eps, gen)
    else:
        start = torch.zeros_like(x)
    return ascend(objective, x, y, norm=norm, eps=eps, steps=steps, step_size=step_size, start=start)


def ascend(objective: Objective, x: torch.Tensor, y: torch.Tensor, *, norm: Norm, eps: float,
           steps: int, step_size: float, start: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Projected gradient ascent on the objective's loss from the perturbation `start`.

    Returns (final iterate, found, x_found): `found` marks examples misclassified at some iterate
    and `x_found` holds the first such iterate, so no success seen on the way is thrown away.
    """
    delta = start
    found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    x_found = x.clone()
    for _ in range(steps):
        delta.requires_grad_(True)
        logits, losses = objective(x + delta)
        with torch.no_grad():
            new = (logits.argmax(1) != y) & ~found
            x_found[new] = (x + delta)[new]
            found |= new
        grad, = torch.autograd.grad(losses.sum(), delta)
        delta = project(norm, x, delta.detach() + ascent_step(norm, grad, step_size), eps)
    return x + delta, found, x_found


@dataclass(frozen=True)
class PGDConfig:
    steps: int = 20
    rel_step: float = 0.25  # step size as a fraction of ε (PGD-20 with step ε/4)
    random_start: bool = True
    restarts: int = 1
    loss: Loss = Loss.CE

    def __post_init__(self) -> None:
        if self.steps < 1 or self.restarts < 1:
            raise ValueError("steps and restarts must be at least 1")
        if not 0 < self.rel_step <= 2.5:
            raise ValueError("rel_step must be in (0, 2.5] (a fraction of ε)")


PGDConfigT = TypeVar("PGDConfigT", bound=PGDConfig)


class PGD(Attack[PGDConfigT]):
    """PGD with restarts; each restart attacks only the points not yet broken.

    Version 2: random starts are drawn per example (`noise`), so an example's outcome no longer
    depends on the batch it is attacked in (v1 drew one stream per batch).
    """

    batch_independent = True
    # the first misclassified iterate is kept (never weaker than the last); an attack on a
    # randomized model prefers the last one when it is misclassified too, being further inside
    prefer_final = False

    def final_logits(self, model: ModelUnderTest, final: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The logits that say whether the last iterate is adversarial."""
        return model(final)

    def objective(self, model: ModelUnderTest, y: torch.Tensor) -> Objective:
        """What the iterates ascend; adaptive variants replace it, success is always the model's."""
        loss = self.config.loss

        def on_logits(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits = model(z)
            return logits, per_example(loss, logits, y)

        return on_logits

    def run(self, model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor,
            threat: ThreatModel, seed: int) -> AttackOutput:
        cfg = self.config
        gens = example_generators(x, y, seed)
        x_adv, success = x.clone(), torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for _ in range(cfg.restarts):
            todo = (~success).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            start = (ball_start(threat.norm, x[todo], threat.eps, [gens[j] for j in todo.tolist()])
                     if cfg.random_start else torch.zeros_like(x[todo]))
            final, found, x_found = ascend(
                self.objective(model, y[todo]), x[todo], y[todo], norm=threat.norm, eps=threat.eps,
                steps=cfg.steps, step_size=cfg.rel_step * threat.eps, start=start)
            with torch.no_grad():
                final_wrong = self.final_logits(model, final, y[todo]).argmax(1) != y[todo]
            hit = found | final_wrong
            keep_first = found & ~final_wrong if self.prefer_final else found
            x_adv[todo] = torch.where(keep_first.view(-1, *[1] * (x.ndim - 1)), x_found, final)
            success[todo] = hit
        return AttackOutput(x_adv.detach(), success)


@dataclass(frozen=True)
class FGSMConfig:
    loss: Loss = Loss.CE


class FGSM(Attack[FGSMConfig]):
    """One step of size ε (L∞: sign of the gradient; L2: normalized gradient, i.e. FGM)."""

    batch_independent = True  # deterministic

    def run(self, model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor,
            threat: ThreatModel, seed: int) -> AttackOutput:
        final, _, _ = pgd_iterates(model, x, y, norm=threat.norm, eps=threat.eps, steps=1,
                                   step_size=threat.eps, loss=self.config.loss, gen=None,
                                   random_init=False)
        with torch.no_grad():
            success = model(final).argmax(1) != y
        return AttackOutput(final.detach(), success)


@dataclass(frozen=True)
class CWConfig(PGDConfig):
    """The adversarial-training literature's "C&W∞": the C&W margin loss optimized by PGD-30."""

    steps: int = 30
    loss: Loss = Loss.MARGIN


ATTACKS.add("fgsm", AttackEntry("FGSM (FGM for L2): one gradient step of size ε", FGSMConfig,
                                lambda cfg: FGSM("fgsm", 1, cfg), roles=frozenset({Role.SINGLE_STEP}),
                                column=BoardColumn(1, "FGSM")))
ATTACKS.add("pgd", AttackEntry("PGD-20, step ε/4, random start, CE loss (all configurable)", PGDConfig,
                               lambda cfg: PGD("pgd", 2, cfg), roles=frozenset({Role.CURVE_REFERENCE}),
                               column=BoardColumn(2, "PGD")))
ATTACKS.add("cw", AttackEntry("C&W margin loss optimized by PGD-30, step ε/4, random start", CWConfig,
                              lambda cfg: PGD("cw", 2, cfg), column=BoardColumn(3, "C&W")))
