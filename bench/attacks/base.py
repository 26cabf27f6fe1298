"""The attack contract, the attack registry, and building attacks from their specs.

An attack is configured by a frozen dataclass, carries a protocol version (bumped whenever its
semantics change: steps, restarts, loss, ε convention), and is run per batch by the harness.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, get_type_hints

import torch
from torch import nn

from bench.attacks.specs import POSITIONAL, AttackSpec, format_attacks
from bench.errors import BenchError, did_you_mean
from bench.loading.model import ModelUnderTest
from bench.registry import Registry
from bench.threat import Norm, ThreatModel


@dataclass
class AttackOutput:
    """Adversarial inputs and the attack's own claim of success per example (re-verified later).

    `broken_by` names the component that found the example (AutoAttack's sub-attacks);
    `warnings` carries diagnostics the attack raised, such as AutoAttack's masking checks.
    """

    x_adv: torch.Tensor
    success: torch.Tensor
    broken_by: list[str | None] | None = None
    warnings: list[str] = field(default_factory=list)


class Surrogates(Protocol):
    """Where transfer attacks find and load their surrogate models. The application supplies it
    (`bench.evaluation.committed.attack_context`): attacks never import defenses or checkpoints
    themselves, nor name one."""

    @property
    def ranked(self) -> tuple[str, ...]:
        """The defenses fit to be surrogates, best first; plain `transfer` uses the first."""
        ...

    def locate(self, spec: str) -> Path:
        """A surrogate named by a registered defense or a checkpoint path, checked; BenchError if not."""
        ...

    def load(self, path: Path) -> nn.Module:
        """The surrogate's verified weights, frozen, in eval mode."""
        ...

    def available(self, name: str) -> bool:
        """Whether the defense `name` has a committed checkpoint to use as a surrogate."""
        ...


@dataclass(frozen=True)
class AttackContext:
    """What an attack may need beyond its config: the dataset, the defense under test and the
    adaptive attacks its structure calls for (what `adaptive` expands to), and where surrogate
    models come from (transfer attacks). Built by `bench.evaluation.committed.attack_context`."""

    dataset: str | None = None
    defense: str | None = None
    defense_attacks: tuple[str, ...] = ()
    surrogates: Surrogates | None = None


ConfigT = TypeVar("ConfigT")


class Attack(ABC, Generic[ConfigT]):
    """Stateless with respect to the model: configuration in, tensors out. Generic in its config
    dataclass, so `self.config` has the attack's own type."""

    adaptive = False  # an attack a defense's structure calls for; counted in the worst case
    # each example's outcome depends on the run seed and the example only, not on which other
    # examples share its batch: such attacks can be cascaded and sharded with identical flags
    batch_independent = False
    # gradient-free: the harness runs it under inference mode, on batches as large as fit
    forward_only = False

    def __init__(self, name: str, version: int, config: ConfigT) -> None:
        self.name = name
        self.version = version
        self.config: ConfigT = config
        self.spec = AttackSpec(name)  # what names this configuration; `build_attack` adds its params
        self.label = name  # the column name in results: the spec as text

    def bind(self, context: AttackContext) -> None:
        """Resolve what the context decides (before any data is loaded, so errors come early)."""
        return None

    @property
    def protocol(self) -> str:
        return f"{self.name}/v{self.version}"

    def stages(self) -> list[Attack]:
        """The cascade the harness runs: each stage attacks only the points earlier stages left
        robust, in order, batch by batch (AutoAttack has four; a plain attack is its own stage)."""
        return [self]

    def independent_of_batch(self, threat: ThreatModel) -> bool:
        """Whether each example's outcome depends only on the run seed and the example."""
        return self.batch_independent

    def batch_seed(self, run_seed: int, batch_index: int) -> int:
        """The seed for one batch, so that a resumed run redraws exactly the same randomness
        (batch-independent attacks derive per-example seeds from the run seed instead)."""
        if self.batch_independent:
            return run_seed
        return (run_seed * 1_000_003 + batch_index * 7919 + sum(map(ord, self.label))) % (2**63)

    @abstractmethod
    def run(self, model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor,
            threat: ThreatModel, seed: int) -> AttackOutput:
        """Attack one batch of clean-correct points; `seed` makes the randomness reproducible."""


class Role(enum.Enum):
    """What the sanity checks and the reports ask about an attack, answered where it is registered,
    so that no check or report matches attack names."""

    OFFICIAL_AUTOATTACK = "official-autoattack"  # the reference protocol the board's AutoAttack column shows
    FAST_AUTOATTACK = "fast-autoattack"  # our cheaper protocol, compared point by point with the official one
    AUTOATTACK_FAMILY = "autoattack-family"  # AutoAttack or its components (APGD, FAB): AutoAttack's checks apply
    BLACK_BOX = "black-box"  # never uses the model's gradients
    SINGLE_STEP = "single-step"
    NOISE_BASELINE = "noise-baseline"  # random draws of the ε-ball: what every attack must beat
    EXTERNAL = "external"  # adversarial examples computed elsewhere, re-verified here
    CURVE_REFERENCE = "curve-reference"  # the iterative attack whose ε-curves the overview plot compares


@dataclass(frozen=True)
class BoardColumn:
    """A column of its own on the leaderboard: where it stands among the per-attack columns, and its heading."""

    position: int
    heading: str


@dataclass(frozen=True)
class AttackEntry(Generic[ConfigT]):
    """What the registry knows about one attack name; `build` takes the config type's values."""

    summary: str
    config_type: type[ConfigT]
    build: Callable[[ConfigT], Attack[ConfigT]]
    norms: tuple[Norm, ...] = (Norm.LINF, Norm.L2)
    positional: str | None = None  # the field `name:value` sets (transfer:pgd-at → surrogate)
    roles: frozenset[Role] = frozenset()
    column: BoardColumn | None = None


ATTACKS: Registry[AttackEntry[Any]] = Registry("attack")


def has_role(name: str, role: Role) -> bool:
    """Whether the attack `name` (as recorded; one no longer registered has no roles) plays `role`."""
    return name in ATTACKS and role in ATTACKS.get(name).roles


def with_role(role: Role) -> list[str]:
    """The registered attacks that play `role`, by name."""
    return [name for name, entry in ATTACKS.items() if role in entry.roles]


def sole_attack(role: Role) -> str:
    """The one registered attack that plays `role` (the official AutoAttack, our fast protocol)."""
    names = with_role(role)
    if len(names) != 1:
        raise RuntimeError(f"exactly one attack must play {role.value}, not {names}")
    return names[0]


def board_columns() -> list[tuple[str, str]]:
    """(heading, attack name) of the attacks with a leaderboard column of their own, in column order."""
    placed = sorted((entry.column.position, entry.column.heading, name)
                    for name, entry in ATTACKS.items() if entry.column is not None)
    return [(heading, name) for _, heading, name in placed]


def convert_param(value: str, kind: Any, key: str, name: str) -> Any:
    try:
        if kind is bool:
            lowered = value.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return lowered in ("true", "1", "yes")
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            return kind(value.lower())
        if kind is int and not re.fullmatch(r"[-+]?[0-9]{1,9}", value.strip()):  # |value| < 10^9: no overflow
            raise ValueError(value)
        if kind is float and not math.isfinite(converted := float(value)):
            raise ValueError(value)
        return converted if kind is float else kind(value)
    except ValueError:
        choices = f" (one of {', '.join(m.value for m in kind)})" if isinstance(kind, type) and issubclass(
            kind, enum.Enum) else ""
        raise BenchError(f"{name}: {key}={value!r} is not a valid {getattr(kind, '__name__', kind)}"
                         f"{choices}") from None


def make_config(name: str, params: dict[str, str]) -> Any:
    """Build the attack's config dataclass from string parameters, checking names and types."""
    entry = ATTACKS.get(name)
    hints = get_type_hints(entry.config_type)
    fields = {f.name for f in dataclasses.fields(entry.config_type)}
    values: dict[str, Any] = {}
    for key, raw in params.items():
        if key == POSITIONAL:
            if entry.positional is None:
                raise BenchError(f"bad attack parameter {raw!r} in {name}:{raw}: write key=value "
                                 f"(parameters of {name}: {', '.join(sorted(fields)) or 'none'})")
            key = entry.positional
        if key not in fields:
            hint = did_you_mean(key, sorted(fields), n=2)
            raise BenchError(f"{name} has no parameter {key!r}.{hint} Parameters: {', '.join(sorted(fields))}")
        values[key] = convert_param(raw, hints[key], key, name)
    try:
        return entry.config_type(**values)
    except ValueError as exc:
        raise BenchError(f"{name}: {exc}") from None


def build_attack(name: str, params: dict[str, str] | None = None,
                 context: AttackContext | None = None) -> Attack:
    entry = ATTACKS.get(name)
    params = dict(params or {})
    if entry.positional is not None and entry.positional in params:  # one label per configuration
        params[POSITIONAL] = params.pop(entry.positional)
    attack = entry.build(make_config(name, params))
    if params:
        attack.spec = AttackSpec(name, tuple(sorted(params.items())))
        attack.label = str(attack.spec)
    attack.bind(context or AttackContext())
    return attack


def current_protocol(name: str) -> str | None:
    """The protocol (name/version) a registered attack runs today in its default configuration,
    None for a name no longer registered or one with no default configuration (`external` needs
    its file): what a record's protocol is compared with."""
    if name not in ATTACKS:
        return None
    try:
        config = make_config(name, {})
    except BenchError:
        return None
    return ATTACKS.get(name).build(config).protocol


ADAPTIVE = "adaptive"  # the `--attack` token that expands to the defense's adaptive attacks


def _adaptive_surrogate(context: AttackContext) -> str | None:
    """The best-ranked surrogate other than the model's own defense, when the dataset has its checkpoint."""
    if context.surrogates is None:
        return None
    others = [name for name in context.surrogates.ranked if name != context.defense]
    return others[0] if others and context.surrogates.available(others[0]) else None


def adaptive_attacks_for(context: AttackContext) -> list[AttackSpec]:
    """What `adaptive` means for this model: its defense's own attacks, transfer, long Square."""
    chosen = [AttackSpec(name) for name in context.defense_attacks]
    surrogate = _adaptive_surrogate(context)
    if surrogate is not None:
        assert context.surrogates is not None
        chosen.append(AttackSpec("transfer") if surrogate == context.surrogates.ranked[0]
                      else AttackSpec.of("transfer", {POSITIONAL: surrogate}))
    chosen.append(AttackSpec("square-long"))
    return chosen


def expand_adaptive(specs: Sequence[AttackSpec], context: AttackContext) -> list[AttackSpec]:
    named = {s.name for s in specs}
    out: list[AttackSpec] = []
    for spec in specs:
        if spec.name != ADAPTIVE:
            out.append(spec)
            continue
        if spec.params:
            raise BenchError("`adaptive` takes no parameters: name the attacks instead, "
                             "e.g. ra-aux,square-long:queries=20000")
        out += [s for s in adaptive_attacks_for(context) if s.name not in named]
    return out


def build_attacks(specs: Sequence[AttackSpec], norm: Norm, context: AttackContext | None = None) -> list[Attack]:
    attacks = []
    for spec in expand_adaptive(specs, context or AttackContext()):
        entry = ATTACKS.get(spec.name)
        if norm not in entry.norms:
            raise BenchError(f"attack {spec.name!r} does not support the {norm.value} threat model "
                             f"(supported: {', '.join(n.value for n in entry.norms)})")
        attacks.append(build_attack(spec.name, spec.parameters, context))
    seen = [a.label for a in attacks]
    if len(set(seen)) != len(seen):
        raise BenchError(f"attack list {format_attacks(specs)!r} names the same attack twice")
    return attacks
