"""Defenses: a training method plus a recipe per dataset. Adding one = one module + `DEFENSES.add`."""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_type_hints

from bench.errors import BenchError, did_you_mean
from bench.registry import Registry, import_modules

if TYPE_CHECKING:
    from defenses.training.method import Method


class Schedule(str, enum.Enum):
    STEP = "step"  # lr × factor after each milestone epoch
    COSINE = "cosine"  # cosine annealing from lr to lr·final_lr_fraction over all epochs


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the trained weights; every field can be overridden from the CLI."""

    arch: str
    epochs: int
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: Schedule = Schedule.STEP
    milestones: tuple[int, ...] = ()  # epochs after which the lr factor changes
    gamma: float = 0.1  # factor per milestone (STEP), unless `lr_factors` lists them
    lr_factors: tuple[float, ...] = ()  # cumulative factor after each milestone, e.g. AFD's halvings
    final_lr_fraction: float = 0.001  # COSINE: the lr it anneals to, as a fraction of `lr`
    eps: float = 0.0  # training ε (L∞); 0 for natural training
    attack_steps: int = 10
    attack_rel_step: float = 0.25  # step as a fraction of ε
    augment: bool = False  # random crop (pad 4) + horizontal flip
    train_points: int | None = None  # train on the first N training points (held-out ones excluded)
    holdout_fraction: float = 0.1  # training data kept apart for model selection
    init: str | None = None  # fine-tuning start: a defense name (its committed checkpoint) or a path
    params: dict[str, Any] = field(default_factory=dict)  # the method's own hyper-parameters
    seed: int = 0

    def replace(self, **overrides: Any) -> Recipe:
        """Apply CLI overrides, ignoring ones left unset (None) so they never clobber the recipe.

        `params` overrides merge into the recipe's params instead of replacing them.
        """
        given = {k: v for k, v in overrides.items() if v is not None}
        if "params" in given:
            given["params"] = {**self.params, **given["params"]}
        return dataclasses.replace(self, **given)

    def lr_factor(self, epoch: int) -> float:
        """Multiplier of `lr` during `epoch` (0-based)."""
        if self.schedule is Schedule.COSINE:
            floor = self.final_lr_fraction
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * epoch / max(self.epochs, 1)))
        passed = sum(1 for m in self.milestones if epoch >= m)
        if passed == 0:
            return 1.0
        return self.lr_factors[passed - 1] if self.lr_factors else self.gamma ** passed


@dataclass(frozen=True)
class Budget:
    """A training budget: one rule applied alike to every defense's recipe, so that checkpoints
    trained under it compare with each other (and not with the other budget's)."""

    name: str
    summary: str
    epoch_factor: int = 1  # epochs, lr milestones and stage lengths (params named *_epochs) × this
    all_points: bool = False  # every training point instead of the recipe's train_points

    def apply(self, recipe: Recipe) -> Recipe:
        k = self.epoch_factor
        params = {key: value * k if key.endswith("_epochs") and isinstance(value, int) else value
                  for key, value in recipe.params.items()}
        return dataclasses.replace(recipe, epochs=recipe.epochs * k, milestones=tuple(m * k for m in recipe.milestones),
                                   train_points=None if self.all_points else recipe.train_points, params=params)


BUDGETS: Registry[Budget] = Registry("training budget")
BUDGETS.add("recipe", Budget("recipe", "each defense's registered recipe (the committed checkpoints: 3 epochs on "
                             "12 000 Fashion-MNIST points for the adversarial ones)"))
BUDGETS.add("full", Budget("full", "every training point (54 000 Fashion-MNIST points after the 10% hold-out) and "
                           "5× the recipe's epochs, lr milestones and stage lengths", epoch_factor=5, all_points=True))


@dataclass(frozen=True)
class Defense:
    """One registered defense: how it trains (`method`), its knobs (`params`) and its recipes."""

    name: str
    summary: str
    paper: str  # arXiv id or reference of the method
    method: Callable[..., Method]  # (model, recipe, params, context) → Method
    recipes: dict[str, Recipe] = field(default_factory=dict)  # per dataset
    params: type | None = None  # frozen dataclass of the method's hyper-parameters
    variant: str = ""  # which published variant this is, e.g. "TRADES loss (released code)"
    selection_metric: str = "robust"  # held-out metric that picks the checkpoint: robust | clean | certified
    # attacks its structure calls for beyond the standard ones (`--attack adaptive` adds them)
    adaptive_attacks: tuple[str, ...] = ()
    # listed on the leaderboard: a committed checkpoint per recipe dataset, a row and a gate
    # baseline are required (and tested). A new defense starts unpublished: one module and its test.
    published: bool = False
    # what the method needs of the architecture beyond a classifier of [0, 1] images ("": nothing, so
    # it also trains a `--arch package.module:factory` of the user's)
    arch_needs: str = ""
    # rank among the surrogates transfer attacks use (0: the one plain `transfer` uses; the next
    # stands in when the model under test is that defense itself); None: not a surrogate
    surrogate_rank: int | None = None

    def make_params(self, values: dict[str, Any]) -> Any:
        """The typed hyper-parameters from a recipe's dict; unknown names fail with suggestions."""
        if self.params is None:
            if values:
                raise BenchError(f"{self.name} has no hyper-parameters (got {', '.join(values)})")
            return None
        known = {f.name: f for f in dataclasses.fields(self.params)}
        for key in values:
            if key not in known:
                hint = did_you_mean(key, sorted(known), n=2)
                raise BenchError(f"{self.name} has no parameter {key!r}.{hint} "
                                 f"Parameters: {', '.join(sorted(known))}")
        from bench.attacks.base import convert_param  # late: bench.attacks imports the model stack

        hints = get_type_hints(self.params)
        typed = {k: convert_param(v, hints[k], k, self.name) if isinstance(v, str) else v
                 for k, v in values.items()}
        try:
            return self.params(**typed)
        except (TypeError, ValueError) as exc:
            raise BenchError(f"{self.name}: bad parameter value: {exc}") from None


DEFENSES: Registry[Defense] = Registry("defense")


# each method module (the top level of `defenses/`) registers itself; the shared machinery is in sub-packages
import_modules("defenses", [str(Path(__file__).resolve().parents[1])])


def published(dataset: str) -> list[str]:
    """The published defenses with a recipe for `dataset`, in training order: a defense whose
    recipe fine-tunes from another (`Recipe.init`) comes after it (`make checkpoints` needs this)."""
    names = [name for name, d in DEFENSES.items() if d.published and dataset in d.recipes]
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        start = DEFENSES.get(name).recipes[dataset].init
        if start in names:
            visit(start)
        ordered.append(name)

    for name in names:
        visit(name)
    return ordered


def transfer_surrogates() -> tuple[str, ...]:
    """The defenses transfer attacks may use as surrogates, best first (`Defense.surrogate_rank`)."""
    ranked = [(d.surrogate_rank, name) for name, d in DEFENSES.items() if d.surrogate_rank is not None]
    return tuple(name for _, name in sorted(ranked))
