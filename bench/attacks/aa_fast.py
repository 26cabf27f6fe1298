"""`aa-fast`: AutoAttack standard's budget cut where the committed records show it buys nothing.

A differently named protocol — `aa` always runs the official code and budget. Two stages, the
second on what the first left robust:
1. our APGD-CE (100 steps), then our targeted APGD-DLR against the 9 classes with the largest
   logits at the point APGD-CE reached (official: at the clean point) — examples leave the batch
   as soon as they are misclassified;
2. official Square, `SQUARE_QUERIES` queries instead of 5000, under inference mode, on all the
   survivors at once, its initial stripes drawn per example.
FAB-T is dropped: in the committed aa records of all 11 Fashion-MNIST checkpoints (200 points
each) it never broke a point that APGD-T had left. Square's successes there came within 1601
queries (ANCRA, the only checkpoint where Square mattered); AutoAttack's p-schedule is fixed, so a
run of N queries is exactly the first N queries of the 5000-query run. `results/perf.md` compares
aa-fast with aa on every committed checkpoint.
APGD starts and Square's initial stripes are drawn per example, so under L∞ no stage depends on the
batch an example is attacked in: aa-fast can follow cheaper attacks in a `--cascade`.
"""

from __future__ import annotations

from typing import Any

import torch
from pyautoattack.square import SquareAttack

from bench.attacks.apgd import APGD, APGDConfig, APGDTargeted, APGDTargetedConfig
from bench.attacks.autoattack import AutoAttackStage, OfficialConfig
from bench.attacks.base import ATTACKS, Attack, AttackEntry, AttackOutput
from bench.attacks.noise import example_generators, uniform
from bench.model import ModelUnderTest
from bench.threat import Norm, ThreatModel

LABEL = "aa-fast"
TARGETS = 9
SQUARE_QUERIES = 2000


class _PerExampleStartSquare(SquareAttack):
    """Official Square (L∞) whose initial stripes are drawn per example. Its later draws (window
    position and sign) are shared by the batch and drawn in a fixed order, so with this start an
    example's run no longer depends on its batch. With AutoAttack's fixed p-schedule, a run of N
    queries is exactly the first N queries of a longer run."""

    _starts: list[torch.Generator] | None = None

    def attack_single_run(self, x: torch.Tensor, y: torch.Tensor) -> Any:
        self._starts = example_generators(x, y, int(self.seed))
        try:
            return super().attack_single_run(x, y)
        finally:
            self._starts = None

    def random_choice(self, shape: list[int]) -> torch.Tensor:
        starts = self._starts
        if starts is not None and len(shape) == 4 and shape[0] == len(starts):  # the initial stripes
            self._starts = None
            return torch.sign(uniform(starts, torch.Size(shape), torch.device(self.device)) * 2 - 1)
        return super().random_choice(shape)


def _cheaper_square(aa: Any) -> None:
    old = aa.square
    aa.square = _PerExampleStartSquare(old.predict, norm=old.norm, n_queries=SQUARE_QUERIES, eps=old.eps,
                                       p_init=old.p_init, n_restarts=old.n_restarts, seed=old.seed,
                                       resc_schedule=old.rescale_schedule, device=old.device)


class SquareStage(AutoAttackStage):
    """aa-fast's Square: batch-independent under L∞, so the harness runs it on all survivors at once."""

    def __init__(self) -> None:
        super().__init__(LABEL, "standard", "square", tune=_cheaper_square)

    def independent_of_batch(self, threat: ThreatModel) -> bool:
        return threat.norm is Norm.LINF  # L2 Square draws per image, in batch order


class APGDThenTargeted(Attack):
    """aa-fast's gradient stage: APGD-CE, then targeted APGD-DLR on what survives, against the
    classes closest to the true one at the point APGD-CE reached (not at the clean point)."""

    batch_independent = True

    def __init__(self, targets: int) -> None:
        super().__init__(LABEL, 1, OfficialConfig())
        self.component = "apgd"
        self.untargeted = APGD(LABEL, 1, APGDConfig(per_example_start=True), component="apgd-ce")
        self.targeted = APGDTargeted(LABEL, 1, APGDTargetedConfig(targets=targets, per_example_start=True),
                                     component="apgd-t")

    def batch_seed(self, run_seed: int, batch_index: int) -> int:
        return run_seed

    def run(self, model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor,
            threat: ThreatModel, seed: int) -> AttackOutput:
        first = self.untargeted.run(model, x, y, threat, seed)
        left = (~first.success).nonzero().squeeze(1)
        x_adv, success = first.x_adv.clone(), first.success.clone()
        names = list(first.broken_by or [None] * x.shape[0])
        if left.numel():
            second = self.targeted.run_ranked(model, x[left], y[left], threat, seed, first.x_adv[left])
            x_adv[left], success[left] = second.x_adv, second.success
            for j, name in zip(left.tolist(), second.broken_by or [None] * left.numel(), strict=True):
                names[j] = name or names[j]
        return AttackOutput(x_adv, success, names)


class AAFast(Attack):
    def __init__(self) -> None:
        super().__init__(LABEL, 1, OfficialConfig())
        self._stages: list[Attack] = [
            APGDThenTargeted(TARGETS),
            SquareStage(),
        ]

    def stages(self) -> list[Attack]:
        return list(self._stages)

    def independent_of_batch(self, threat: ThreatModel) -> bool:
        return all(s.independent_of_batch(threat) for s in self._stages)

    def run(self, model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor,
            threat: ThreatModel, seed: int) -> AttackOutput:
        raise NotImplementedError("aa-fast is a cascade across batches: bench.harness runs its stages()")


ATTACKS.add(LABEL, AttackEntry(
    f"AutoAttack, cheaper: our APGD-CE and APGD-T ({TARGETS} targets; broken points leave the batch), then "
    f"official Square with {SQUARE_QUERIES} queries; no FAB-T. Not the official protocol (that is aa)",
    OfficialConfig, lambda cfg: AAFast()))
