"""AutoAttack through the official code (PyPI `pyautoattack`, the packaging of fra31/auto-attack).

Every stage builds the official `AutoAttack` object with its version ('standard', 'plus',
'rand'), which sets the official hyper-parameters, restricts `attacks_to_run` to one component
and calls the official `run_standard_evaluation` on one batch of still-robust points. The
harness feeds the stages exactly the batches AutoAttack's own loop would (still-robust points in
index order, `batch_size` at a time) with the same fixed seed, so the per-example outcome equals
a direct pyautoattack call, while the harness can resume between batches, keep the adversarial
examples for verification and count passes per component. There are no tunable parameters:
a cheaper variant must get another name.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from bench.attacks.base import ATTACKS, Attack, AttackEntry, AttackOutput, BoardColumn, Role
from bench.loading.model import ModelUnderTest
from bench.threat import ThreatModel

log = logging.getLogger(__name__)
AA_LOGGER = "auto-attack"

VERSION_COMPONENTS = {
    "standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
    "plus": ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"),
    "rand": ("apgd-ce", "apgd-dlr"),
}


@dataclass(frozen=True)
class OfficialConfig:
    """Official AutoAttack protocols take no parameters: a cheaper variant is another protocol."""


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def captured_autoattack_log() -> Iterator[_Capture]:
    """Collect what pyautoattack logs (progress at DEBUG, masking checks at WARNING)."""
    logger = logging.getLogger(AA_LOGGER)
    handler, level, propagate = _Capture(), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


class AutoAttackStage(Attack):
    """One official component (apgd-ce, apgd-t, fab-t, square, ...) of one AutoAttack version."""

    def __init__(self, label: str, aa_version: str, component: str,
                 tune: Callable[[Any], None] | None = None) -> None:
        super().__init__(label, 1, OfficialConfig())
        self.aa_version = aa_version
        self.component = component
        self.tune = tune  # a derived protocol's budget change on the official object (aa-fast)
        # FAB-T's single restart starts at the clean point; the others draw their random starts
        # (APGD) or initial stripes (Square) for the whole batch at once
        self.batch_independent = component == "fab-t"
        self.forward_only = component == "square"

    def batch_seed(self, run_seed: int, batch_index: int) -> int:
        return run_seed  # AutoAttack reseeds every batch with the same seed

    def run(self, model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor,
            threat: ThreatModel, seed: int) -> AttackOutput:
        from pyautoattack import AutoAttack

        with captured_autoattack_log() as capture:
            aa = AutoAttack(model, device=model.device, eps=threat.eps, norm=threat.norm.autoattack_name,
                            seed=seed, version=self.aa_version)
            aa.attacks_to_run = [self.component]
            if self.tune is not None:
                self.tune(aa)
            x_adv, y_adv = aa.run_standard_evaluation(x, y, batch_size=x.shape[0])
        warnings = []
        for record in capture.records:
            if record.levelno >= logging.WARNING:
                warnings.append(f"autoattack {self.component}: {record.getMessage()}")
            else:
                log.debug("%s", record.getMessage())
        success = (y_adv.to(y.device) != y)
        return AttackOutput(x_adv.detach(), success, [self.component] * x.shape[0], warnings)


class AutoAttackEnsemble(Attack):
    """An AutoAttack version: its components as a cascade of stages."""

    def __init__(self, label: str, aa_version: str, components: tuple[str, ...]) -> None:
        super().__init__(label, 1, OfficialConfig())
        self._stages = [AutoAttackStage(label, aa_version, c) for c in components]
        self.batch_independent = all(s.batch_independent for s in self._stages)

    def stages(self) -> list[Attack]:
        return list(self._stages)

    def run(self, model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor,
            threat: ThreatModel, seed: int) -> AttackOutput:
        raise NotImplementedError(
            "an AutoAttack version is a cascade across batches: bench.evaluation.harness runs its stages()")


def _entry(summary: str, label: str, version: str, components: tuple[str, ...],
           roles: frozenset[Role] = frozenset({Role.AUTOATTACK_FAMILY}), column: BoardColumn | None = None) -> AttackEntry:
    return AttackEntry(summary, OfficialConfig, lambda cfg: AutoAttackEnsemble(label, version, components),
                       roles=roles, column=column)


ATTACKS.add("aa", _entry("AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square 5000), official code",
                         "aa", "standard", VERSION_COMPONENTS["standard"],
                         frozenset({Role.OFFICIAL_AUTOATTACK, Role.AUTOATTACK_FAMILY}),
                         BoardColumn(4, "AutoAttack")))
ATTACKS.add("aa-plus", _entry("AutoAttack plus (APGD-CE/DLR 5 restarts, FAB, Square, APGD-T, FAB-T)",
                              "aa-plus", "plus", VERSION_COMPONENTS["plus"]))
ATTACKS.add("aa-rand", _entry("AutoAttack rand (APGD-CE, APGD-DLR with EOT over 20 draws), for "
                              "randomized defenses", "aa-rand", "rand", VERSION_COMPONENTS["rand"]))
for _component, _summary in (
        ("apgd-ce", "APGD on cross-entropy, 100 iterations, 1 restart (as in AutoAttack standard)"),
        ("apgd-dlr", "APGD on the DLR loss, 100 iterations, 1 restart (standard-version settings)"),
        ("apgd-t", "targeted APGD-DLR, 9 target classes × 100 iterations (as in AutoAttack standard)"),
        ("fab-t", "targeted FAB, 9 target classes × 100 iterations (as in AutoAttack standard)"),
        ("square", "Square Attack, 5000 queries (as in AutoAttack standard)")):
    ATTACKS.add(_component, _entry(_summary, _component, "standard", (_component,),
                                   frozenset({Role.BLACK_BOX}) if _component == "square" else frozenset({Role.AUTOATTACK_FAMILY})))

