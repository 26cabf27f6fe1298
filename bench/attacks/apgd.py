"""Our APGD (CE, DLR, targeted DLR): the official algorithm, minus the passes that cannot matter.

Step-size schedule (checkpoints at 22%, then shrinking by 3% to a floor of 6% of the iterations,
halving on oscillation or stagnation), momentum 0.75, restarts from the best point, random start
drawn exactly as the official code draws it (from one generator seeded per batch, in the same
order and shapes), and targets taken as the 2nd, 3rd, ... largest clean logit. The difference:
an example is dropped from the forward/backward batch the moment an iterate misclassifies it.
The official code keeps computing its gradient until the last iteration, although its outcome is
already fixed — so on a weak model most of its passes are wasted. Results agree per example with
pyautoattack up to floating-point effects of different batch shapes (benchmarks/perf.py, results/perf.md).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import torch
import torch.nn.functional as F

from bench.attacks.base import ATTACKS, Attack, AttackContext, AttackEntry, AttackOutput, Role
from bench.attacks.noise import example_generators, normal, uniform
from bench.errors import BenchError
from bench.loading.model import ModelUnderTest
from bench.threat import Norm, ThreatModel


class APGDLoss(str, enum.Enum):
    CE = "ce"
    DLR = "dlr"  # difference of logits ratio: scale-invariant, so logit scaling cannot mask it


@dataclass(frozen=True)
class APGDConfig:
    loss: APGDLoss = APGDLoss.CE
    steps: int = 100
    restarts: int = 1
    rho: float = 0.75  # oscillation threshold of the step-size checkpoints
    # False: random starts drawn for the whole batch from one stream, exactly as pyautoattack
    # draws them (per-example agreement with the official code); True: drawn per example
    # (`noise`), so outcomes do not depend on the batch — what cascades need (aa-fast)
    per_example_start: bool = False

    def __post_init__(self) -> None:
        if self.steps < 1 or self.restarts < 1:
            raise ValueError("steps and restarts must be at least 1")


@dataclass(frozen=True)
class APGDTargetedConfig:
    """Targeted DLR loss, one run per target class in the order of the clean logits."""

    targets: int = 9
    steps: int = 100
    restarts: int = 1
    rho: float = 0.75
    per_example_start: bool = False

    def __post_init__(self) -> None:
        if self.steps < 1 or self.restarts < 1 or self.targets < 1:
            raise ValueError("steps, restarts and targets must be at least 1")


def dlr(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    ranked = logits.sort(dim=1).values
    true = logits.gather(1, y[:, None]).squeeze(1)
    top_is_true = (logits.argmax(1) == y).float()
    best_other = ranked[:, -2] * top_is_true + ranked[:, -1] * (1 - top_is_true)
    return -(true - best_other) / (ranked[:, -1] - ranked[:, -3] + 1e-12)


def dlr_targeted(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    ranked = logits.sort(dim=1).values
    gap = logits.gather(1, y[:, None]).squeeze(1) - logits.gather(1, target[:, None]).squeeze(1)
    return -gap / (ranked[:, -1] - 0.5 * (ranked[:, -3] + ranked[:, -4]) + 1e-12)


def _per_sample(t: torch.Tensor, ndim: int) -> torch.Tensor:
    return t.view(-1, *([1] * (ndim - 1)))


def _normalized(norm: Norm, t: torch.Tensor) -> torch.Tensor:
    size = t.abs().flatten(1).amax(1) if norm is Norm.LINF else t.flatten(1).norm(dim=1)
    return t / (_per_sample(size, t.ndim) + 1e-12)


def _project(norm: Norm, x: torch.Tensor, z: torch.Tensor, eps: float) -> torch.Tensor:
    if norm is Norm.LINF:
        return torch.clamp(torch.min(torch.max(z, x - eps), x + eps), 0.0, 1.0)
    delta = z - x
    radius = torch.clamp(_per_sample(delta.flatten(1).norm(dim=1), z.ndim), max=eps)
    return torch.clamp(x + _normalized(norm, delta) * radius, 0.0, 1.0)


class LossOf:
    """Per-example loss given logits and the batch positions they belong to (targets are per position)."""

    def __init__(self, kind: str, y: torch.Tensor, target: torch.Tensor | None = None) -> None:
        self.kind, self.y, self.target = kind, y, target

    def __call__(self, logits: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        y = self.y[idx]
        if self.kind == "ce":
            return F.cross_entropy(logits, y, reduction="none")
        if self.kind == "dlr":
            return dlr(logits, y)
        assert self.target is not None
        return dlr_targeted(logits, y, self.target[idx])


@dataclass
class _Run:
    """Per-example outcome of one APGD run: fooled flags, the first fooling iterate, best-loss point."""

    fooled: torch.Tensor
    x_fooled: torch.Tensor
    x_best: torch.Tensor


class StartNoise:
    """Where random starts come from: one stream for the batch (as pyautoattack draws them), or
    one generator per example (batch-independent)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, seed: int, per_example: bool) -> None:
        self.batch = torch.Generator().manual_seed(seed)
        self.examples = example_generators(x, y, seed) if per_example else None

    def draw(self, norm: Norm, shape: torch.Size, rows: torch.Tensor, device: torch.device) -> torch.Tensor:
        """Uniform in [-1,1] (L∞) or standard normal (L2) for the examples at `rows`."""
        if self.examples is not None:
            gens = [self.examples[i] for i in rows.tolist()]
            return (uniform(gens, shape, device) * 2 - 1) if norm is Norm.LINF else normal(gens, shape, device)
        noise = (2 * torch.rand(shape, generator=self.batch) - 1) if norm is Norm.LINF else \
            torch.randn(shape, generator=self.batch)
        return noise.to(device)


def apgd_single_run(model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor, *, norm: Norm, eps: float,
                    steps: int, rho: float, noise: torch.Tensor, loss_of: LossOf) -> _Run:
    """One APGD run (official schedule) from `noise`, computing only examples not yet misclassified."""
    n, ndim = x.shape[0], x.ndim
    x_adv = (x + eps * _normalized(norm, noise)).clamp(0.0, 1.0)
    checkpoint_first = max(int(0.22 * steps), 1)
    checkpoint_min = max(int(0.06 * steps), 1)
    checkpoint_decrease = max(int(0.03 * steps), 1)

    def evaluate(idx: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = z.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = model(z)
            losses = loss_of(logits.float(), idx)
        grad, = torch.autograd.grad(losses.sum(), z)
        return logits.detach(), losses.detach(), grad.detach()

    everyone = torch.arange(n, device=x.device)
    logits, loss_now, grad = evaluate(everyone, x_adv)
    robust = logits.argmax(1) == y
    x_fooled = x_adv.clone()
    x_best, grad_best, loss_best = x_adv.clone(), grad.clone(), loss_now.clone()
    step = torch.full((n,), 2.0 * eps, device=x.device)
    x_old = x_adv.clone()
    loss_steps = torch.zeros(steps, n, device=x.device)
    loss_best_at_check = loss_best.clone()
    reduced_at_check = torch.ones(n, device=x.device)
    k, since_check = checkpoint_first, 0
    for i in range(steps):
        idx = robust.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        with torch.no_grad():
            xa, x0 = x_adv[idx], x[idx]
            momentum = xa - x_old[idx]
            x_old[idx] = xa
            a = 0.75 if i > 0 else 1.0
            g = grad[idx]
            s = _per_sample(step[idx], ndim)
            ascent = g.sign() if norm is Norm.LINF else _normalized(norm, g)
            z = _project(norm, x0, xa + s * ascent, eps)
            z = _project(norm, x0, xa + (z - xa) * a + momentum * (1 - a), eps)
            x_adv[idx] = z
        logits, loss_now, g_new = evaluate(idx, z)
        grad[idx] = g_new
        wrong = logits.argmax(1) != y[idx]
        newly = idx[wrong]
        x_fooled[newly] = z[wrong]
        robust[newly] = False
        loss_steps[i, idx] = loss_now
        better = loss_now > loss_best[idx]
        improved = idx[better]
        x_best[improved], grad_best[improved], loss_best[improved] = z[better], g_new[better], loss_now[better]
        since_check += 1
        if since_check == k:
            oscillating = (_increases(loss_steps, i, k) <= k * rho).float()
            stalled = (1.0 - reduced_at_check) * (loss_best_at_check >= loss_best).float()
            reduce = torch.max(oscillating, stalled)
            reduced_at_check, loss_best_at_check = reduce.clone(), loss_best.clone()
            halve = reduce > 0
            step[halve] /= 2.0
            x_adv[halve], grad[halve] = x_best[halve], grad_best[halve]
            k = max(k - checkpoint_decrease, checkpoint_min)
            since_check = 0
    return _Run(~robust, x_fooled, x_best)


def _increases(loss_steps: torch.Tensor, i: int, k: int) -> torch.Tensor:
    """How often the loss rose over the last k steps. As in the official code, at the first
    checkpoint the oldest comparison reads row -1 (the still-zero last row)."""
    count = torch.zeros(loss_steps.shape[1], device=loss_steps.device)
    for c in range(k):
        count += (loss_steps[i - c] > loss_steps[i - c - 1]).float()
    return count


class _StartChoice(Protocol):
    @property
    def per_example_start(self) -> bool: ...


APGDConfigT = TypeVar("APGDConfigT", bound=_StartChoice)  # APGDConfig, APGDTargetedConfig


class _SeededLikeAutoAttack(Attack[APGDConfigT]):
    def __init__(self, name: str, version: int, config: APGDConfigT, component: str | None = None) -> None:
        super().__init__(name, version, config)
        self.batch_independent = config.per_example_start
        self.component = component  # its name as a stage of an ensemble (aa-fast's "apgd-ce")

    def batch_seed(self, run_seed: int, batch_index: int) -> int:
        return run_seed  # like AutoAttack: every batch reseeded with the run seed


class APGD(_SeededLikeAutoAttack[APGDConfig]):
    """Untargeted APGD on CE or DLR."""

    def run(self, model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor,
            threat: ThreatModel, seed: int) -> AttackOutput:
        cfg = self.config
        starts = StartNoise(x, y, seed, cfg.per_example_start)
        return _restarts(lambda rows, _: apgd_single_run(
            model, x[rows], y[rows], norm=threat.norm, eps=threat.eps, steps=cfg.steps, rho=cfg.rho,
            noise=starts.draw(threat.norm, x[rows].shape, rows, x.device),
            loss_of=LossOf(cfg.loss.value, y[rows])), x, restarts=cfg.restarts, targets=1, targeted=False,
            component=self.component)


class APGDTargeted(_SeededLikeAutoAttack[APGDTargetedConfig]):
    """Targeted APGD-DLR against the 2nd, 3rd, ... most likely class, each on what is still robust."""

    def bind(self, context: AttackContext) -> None:
        """More targets than other classes would be recorded but never run: refuse them."""
        if context.dataset is None:
            return
        from bench.data import DATASETS

        classes = DATASETS.get(context.dataset).num_classes
        if self.config.targets > classes - 1:
            raise BenchError(f"{self.name}: targets={self.config.targets} but {context.dataset} has only "
                             f"{classes - 1} classes besides the true one")

    def run(self, model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor,
            threat: ThreatModel, seed: int) -> AttackOutput:
        return self.run_ranked(model, x, y, threat, seed, logit_ranked_targets(model, x))

    def run_ranked(self, model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, seed: int,
                   order: torch.Tensor) -> AttackOutput:
        """Attack the classes in `order` ([n, ≥ targets]: per example, the target of each rank; −1
        where an example has no target of that rank), each rank on what is still robust."""
        cfg = self.config
        starts = StartNoise(x, y, seed, cfg.per_example_start)

        def one(rows: torch.Tensor, rank: int) -> _Run:
            xs, ys = x[rows], y[rows]
            return apgd_single_run(model, xs, ys, norm=threat.norm, eps=threat.eps, steps=cfg.steps,
                                   rho=cfg.rho, noise=starts.draw(threat.norm, xs.shape, rows, x.device),
                                   loss_of=LossOf("dlr-targeted", ys, order[rows, rank]))

        targets = min(cfg.targets, model.num_classes - 1, order.shape[1])
        return _restarts(one, x, restarts=cfg.restarts, targets=targets, targeted=True, component=self.component,
                         active=order >= 0)


def logit_ranked_targets(model: ModelUnderTest, at: torch.Tensor) -> torch.Tensor:
    """[n, classes − 1]: the 2nd, 3rd, ... largest logit at `at` — AutoAttack's target order at a
    point the model still classifies correctly. One forward pass for every rank."""
    with torch.no_grad():
        return model(at).sort(dim=1).indices.flip(1)[:, 1:]


def _restarts(single: Callable[[torch.Tensor, int], _Run], x: torch.Tensor, *, restarts: int, targets: int,
              targeted: bool, component: str | None, active: torch.Tensor | None = None) -> AttackOutput:
    """Target classes × restarts, each on the points still robust (the official loop order), and
    for rank k only on the points with `active[:, k]` (all when None). `broken_by` names the stage
    and, for targeted runs, the rank of the target that succeeded."""
    success = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    x_adv = x.clone()
    broken_by: list[str | None] = [None] * x.shape[0]
    for rank in range(targets):
        for _ in range(restarts):
            todo = (~success & (active[:, rank] if active is not None else True)).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            result = single(todo, rank)
            x_adv[todo] = torch.where(_per_sample(result.fooled, x.ndim), result.x_fooled, result.x_best)
            success[todo[result.fooled]] = True
            for j in todo[result.fooled].tolist():
                broken_by[j] = "/".join(filter(None, (component, f"target{rank + 1}" if targeted else None))) or None
    return AttackOutput(x_adv.detach(), success, broken_by if any(broken_by) else None)


ATTACKS.add("apgd", AttackEntry(
    "our APGD (loss=ce|dlr, 100 steps): the official algorithm and random start, but examples leave the "
    "batch once misclassified; the official code is apgd-ce / apgd-dlr", APGDConfig,
    lambda cfg: APGD("apgd", 1, cfg), roles=frozenset({Role.AUTOATTACK_FAMILY})))
ATTACKS.add("apgd-targeted", AttackEntry(
    "our targeted APGD-DLR (targets=9 × 100 steps), early removal as in `apgd`; the official code is "
    "apgd-t", APGDTargetedConfig, lambda cfg: APGDTargeted("apgd-targeted", 1, cfg),
    roles=frozenset({Role.AUTOATTACK_FAMILY})))
