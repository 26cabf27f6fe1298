"""What a defense's training procedure is, and the inner attack every adversarial method uses.

A `Method` owns the model being trained plus whatever the method adds around it (projection
heads, disentanglers, a frozen teacher, an EMA copy). The trainer only calls `loss` per batch,
`before_epoch`/`after_step` hooks, and asks for the `deployed` classifier it validates and
exports, so methods with stages, extra optimizers or folded exports fit the same loop.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bench.data import DatasetSpec
from bench.norms import ascent_step, project, random_start
from bench.threat import Norm
from defenses.nets.archs import Backbone
from defenses.training.registry import Recipe


@dataclass(frozen=True)
class TrainContext:
    spec: DatasetSpec
    init: nn.Module | None = None  # the fine-tuning start (AFD), already loaded and verified
    init_sha256: str | None = None
    steps_per_epoch: int = 0  # optimizer steps per epoch, for methods whose schedules move step by step


class Method(nn.Module):
    """Base class: override `loss`; the rest has defaults that suit a plain classifier."""

    def __init__(self, model: nn.Module, recipe: Recipe, hp: Any, ctx: TrainContext) -> None:
        super().__init__()
        self.model = model
        self.recipe = recipe
        self.hp = hp
        self.ctx = ctx
        self.aux_optimizers: dict[str, torch.optim.Optimizer] = {}  # saved with the resume state

    @property
    def backbone(self) -> Backbone:
        """The model as a `Backbone` (trunk, embed, head), for methods that reach inside it."""
        if not isinstance(self.model, Backbone):
            raise TypeError(f"{type(self).__name__} needs a plain backbone architecture, not "
                            f"{type(self.model).__name__}")
        return self.model

    @property
    def linear_head(self) -> nn.Linear:
        head = self.backbone.head
        if not isinstance(head, nn.Linear):
            raise TypeError(f"{type(self).__name__} needs a linear classifier head, not {type(head).__name__}")
        return head

    def loss(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, epoch: int) -> torch.Tensor:
        """The loss of one batch; the trainer backpropagates it unless it carries no gradient."""
        raise NotImplementedError

    def param_groups(self) -> list[dict[str, Any]]:
        """Parameters of the main SGD optimizer (everything trainable not owned by an aux optimizer)."""
        owned = {id(p) for opt in self.aux_optimizers.values() for g in opt.param_groups for p in g["params"]}
        return [{"params": [p for p in self.parameters() if p.requires_grad and id(p) not in owned]}]

    def before_epoch(self, epoch: int) -> None:
        """Stage switches; must depend on `epoch` only, so a resumed run does the same."""

    def after_step(self) -> None:
        """After every optimizer step (EMA updates)."""

    def selectable(self, epoch: int) -> bool:
        """Whether the model after `epoch` (0-based) may be selected as the final checkpoint."""
        return True

    def deployed(self) -> nn.Module:
        """The plain classifier that is validated and exported."""
        return self.model

    def describe(self) -> dict[str, Any]:
        """Method-specific facts for the sidecar (update rule, deployed-logit convention, ...)."""
        return {}


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """BatchNorm/dropout frozen for the inner attack, as in the TRADES/MART code lines."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


class Start(str, enum.Enum):
    UNIFORM = "uniform"  # uniform in the ε-ball (Madry PGD)
    GAUSSIAN = "gaussian"  # x + 0.001·N(0, I) (TRADES, MART, ANCRA, SPAT)


def perturb(objective: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, eps: float,
            steps: int, step_size: float, start: Start, gen: torch.Generator,
            descend: bool = False) -> torch.Tensor:
    """L∞ PGD on `objective(x_adv)` (a scalar: per-example losses summed), final iterate, detached.

    `descend=True` minimizes instead (ANCRA's targeted negatives move towards a class).
    """
    if start is Start.UNIFORM:
        delta = random_start(Norm.LINF, x, eps, gen)
    else:
        noise = torch.randn(x.shape, generator=gen, device=gen.device).to(x.device) * 0.001
        delta = (x + noise).clamp(0, 1) - x
    sign = -1.0 if descend else 1.0
    for _ in range(steps):
        delta.requires_grad_(True)
        grad, = torch.autograd.grad(objective(x + delta), delta)
        delta = project(Norm.LINF, x, delta.detach() + ascent_step(Norm.LINF, sign * grad, step_size), eps)
    return (x + delta).detach()


def recipe_attack(recipe: Recipe) -> dict[str, Any]:
    """The recipe's inner-attack budget as keyword arguments of `perturb`."""
    return {"eps": recipe.eps, "steps": recipe.attack_steps, "step_size": recipe.attack_rel_step * recipe.eps}
