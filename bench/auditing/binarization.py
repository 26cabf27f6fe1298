"""The binarization test (Zimmermann et al., NeurIPS 2022): does the attack find an adversarial
example that provably exists?

Per test point x, the model's own features (what its readout layer receives) are computed for
inner points — x and uniform draws of the (1 − gap)·ε ball — and for boundary points drawn on the
ε-sphere; a linear two-class readout is fitted on them until it separates them perfectly, and
swapped in for the model's readout (everything before and after the readout stays: input
transforms, masks, post-processing). The binarized model calls x "inner" and the boundary points,
which lie inside the threat model, "boundary": an adversarial example exists. An attack passes a
task when it finds one (verified in fp32); an attack that fails many tasks is too weak for this
model, whatever robust accuracy it reports. A task whose readout cannot separate the points is a
construction failure, counted apart. Two controls come with it: the readout's accuracy on fresh
inner draws (it must call the ball "inner", or the task is not the one intended), and a random
baseline — whether fresh random draws of the ε-ball already find the boundary class, which makes
a task easy and its pass uninformative.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from bench.attacks import Attack
from bench.attacks.noise import ball_start
from bench.errors import VerificationError
from bench.loading.model import ModelUnderTest
from bench.norms import distance
from bench.stats import wilson_interval
from bench.threat import Norm, ThreatModel
from bench.verify import verify_successes

PASS_RATE = 0.9  # an attack fails the test when its pass rate is below this with 95% confidence
SURFACE_BISECTIONS = 40


@dataclass(frozen=True)
class BinarizationSettings:
    """How many tasks and points; the defaults follow the paper's shape (many inner points, one
    boundary point) at a CPU-sized scale."""

    points: int = 100  # tasks: the first clean-correct audit points
    inner: int = 200  # x and inner − 1 draws of the (1 − gap)·ε ball
    boundary: int = 1  # draws on the ε-sphere
    gap: float = 0.05
    validation: int = 200  # fresh inner draws per task, for the readout's validation accuracy
    random_draws: int = 500  # fresh ε-ball draws per task, for the random baseline
    fit_steps: int = 500  # L-BFGS iterations at most for the readout
    closeness: float = 0.99  # threshold position between the inner and the boundary points' scores

    def __post_init__(self) -> None:
        if min(self.points, self.inner, self.boundary, self.fit_steps) < 1 or not 0 < self.gap < 1:
            raise ValueError(f"invalid binarization settings {self}")


@dataclass(frozen=True)
class Readout:
    """The layer whose output the test replaces: its `call`-th call in a forward (a head shared by
    reverse-attention blocks runs several times; the last call makes the logits)."""

    module: nn.Module
    call: int
    features: int
    name: str


@dataclass(frozen=True)
class AttackPasses:
    label: str
    passed: int
    tasks: int
    failed_indices: tuple[int, ...]

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.passed, self.tasks)

    @property
    def fails_test(self) -> bool:
        return self.tasks > 0 and self.interval[1] < PASS_RATE


@dataclass(frozen=True)
class BinarizationResult:
    """`reason` is why the test does not apply (then nothing else is filled in) or a note on how
    the readout was found."""

    applicable: bool
    reason: str
    settings: BinarizationSettings
    tried: int = 0
    construction_failed: tuple[int, ...] = ()
    validation_accuracy: float = float("nan")  # mean over tasks: fresh inner draws called inner
    random_baseline: int = 0  # tasks where a random draw of the ε-ball already was adversarial
    attacks: tuple[AttackPasses, ...] = ()

    @property
    def tasks(self) -> int:
        return self.tried - len(self.construction_failed)

    @property
    def passed(self) -> bool:
        return not any(a.fails_test for a in self.attacks)


class _CallHook:
    """Counts calls of the readout within one forward; replaces (or records) the chosen call."""

    def __init__(self, call: int, replace: nn.Module | None) -> None:
        self.call, self.replace, self.seen = call, replace, 0
        self.features: torch.Tensor | None = None

    def __call__(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
                 ) -> torch.Tensor | None:
        self.seen += 1
        if self.seen != self.call:
            return None
        self.features = inputs[0]
        return self.replace(inputs[0]) if self.replace is not None else None


class BinarizedModule(nn.Module):
    """The model with the chosen readout call answered by a two-class linear layer."""

    def __init__(self, module: nn.Module, readout: Readout, binary: nn.Linear) -> None:
        super().__init__()
        self.module, self.binary = module, binary
        self._readout = readout

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        hook = _CallHook(self._readout.call, self.binary)
        handle = self._readout.module.register_forward_hook(hook)
        try:
            return self.module(z)
        finally:
            handle.remove()


def find_readout(model: ModelUnderTest, x: torch.Tensor) -> Readout | str:
    """The module exposed as `head`, else the last-called Linear layer with one output per class;
    a string says why there is none."""
    inner = model.module
    candidates: list[nn.Module] = [m for m in inner.modules()
                                   if isinstance(m, nn.Linear) and m.out_features == model.num_classes]
    head = getattr(inner, "head", None)
    if isinstance(head, nn.Module):
        candidates = [head]
    if not candidates:
        return (f"no readout layer: the model exposes no `head` module and no Linear layer with "
                f"{model.num_classes} outputs (scripted or exported models hide theirs)")
    calls: list[tuple[nn.Module, torch.Tensor]] = []

    def record(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        calls.append((module, inputs[0]))

    handles = [m.register_forward_hook(record) for m in candidates]
    try:
        with torch.no_grad(), model.full_precision():
            model(x[:2])
    finally:
        for h in handles:
            h.remove()
    if not calls:
        return "no readout layer runs in the forward pass"
    chosen, features = calls[-1]
    if features.ndim != 2:
        return f"the readout's input is not a feature vector (shape {tuple(features.shape)})"
    call = sum(m is chosen for m, _ in calls)
    names = {id(m): n for n, m in inner.named_modules()}
    return Readout(chosen, call, int(features.shape[1]), names.get(id(chosen), type(chosen).__name__))


def _features(model: ModelUnderTest, readout: Readout, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    out = []
    with torch.no_grad(), model.full_precision():
        for i in range(0, x.shape[0], batch):
            hook = _CallHook(readout.call, None)
            handle = readout.module.register_forward_hook(hook)
            try:
                model(x[i:i + batch].to(model.device))
            finally:
                handle.remove()
            assert hook.features is not None
            out.append(hook.features.double().cpu())
    return torch.cat(out)


def _on_sphere(norm: Norm, x: torch.Tensor, eps: float, gen: torch.Generator, n: int) -> torch.Tensor:
    """n points at distance exactly ε from x inside [0,1] (random directions, scaled by bisection)."""
    rep = x.expand(n, *x.shape).cpu()
    direction = torch.rand(rep.shape, generator=gen) * 2 - 1 if norm is Norm.LINF else torch.randn(rep.shape, generator=gen)
    low = torch.zeros(n, dtype=torch.float64)
    high = torch.full((n,), 4.0 * eps / float(direction.flatten(1).abs().amax(1).min()))
    view = (-1, *([1] * x.ndim))
    for _ in range(SURFACE_BISECTIONS):
        mid = (low + high) / 2
        reach = distance(norm, (rep + mid.view(view).float() * direction).clamp(0, 1), rep).double()
        low, high = torch.where(reach < eps, mid, low), torch.where(reach < eps, high, mid)
    points = (rep + high.view(view).float() * direction).clamp(0, 1)
    # float rounding may leave the point a hair outside: pull it onto the sphere
    delta = points - rep
    scale = (eps / distance(norm, points, rep).clamp_min(1e-12)).clamp(max=1.0)
    return (rep + delta * scale.view(view)).clamp(0, 1)


def _inner(norm: Norm, x: torch.Tensor, radius: float, gen: torch.Generator, n: int) -> torch.Tensor:
    rep = x.expand(n, *x.shape).cpu()
    return rep + ball_start(norm, rep, radius, [gen] * n)


def _fit_readout(features: torch.Tensor, labels: torch.Tensor, steps: int, closeness: float) -> nn.Linear | None:
    """A class-balanced logistic readout that separates the points perfectly, rescaled so its logit
    difference spans 1 over them (a saturated readout would starve CE gradients); None if no
    separating solution is found."""
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    f = (features - mean) / std
    w = torch.zeros(f.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    target = labels.double()
    weight = torch.where(labels == 1, 0.5 / labels.sum(), 0.5 / (labels == 0).sum()).double()
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (weight * nn.functional.binary_cross_entropy_with_logits(f @ w + b, target, reduction="none")).sum()
        loss.backward()
        return loss

    separated = False
    for _ in range(max(1, steps // 20)):
        opt.step(closure)
        with torch.no_grad():
            score = f @ w + b
            if bool(((score > 0) == (labels == 1)).all()):
                separated = True
                break
    if not separated:
        return None
    with torch.no_grad():
        # the threshold moves next to the boundary points, leaving the "boundary" region as small
        # as the fit allows: random draws then rarely land in it (the paper's tight placement)
        low, high = float(score[labels == 0].max()), float(score[labels == 1].min())
        b = b - (low + closeness * (high - low))
        score = f @ w + b
        w_raw, b_raw = w / std, b - (w / std) @ mean
        span = float(score.max() - score.min())
        w_raw, b_raw = w_raw / span, b_raw / span
        layer = nn.Linear(features.shape[1], 2)
        layer.weight.copy_(torch.stack([-w_raw / 2, w_raw / 2]).float())
        layer.bias.copy_(torch.stack([-b_raw / 2, b_raw / 2]).float())
    layer.requires_grad_(False)
    return layer


def _task_seed(seed: int, index: int) -> int:
    return (seed * 1_000_003 + index * 7919 + 17) % (2**61 - 1)


def run_binarization(model: ModelUnderTest, x: torch.Tensor, indices: list[int], threat: ThreatModel,
                     attacks: list[Attack], settings: BinarizationSettings, seed: int) -> BinarizationResult:
    """Build one task per point (clean-correct points, in order, up to `settings.points`) and run
    every attack on each; `indices` name the points in the test split."""
    with model.attack_mode():  # eval mode: a probe forward must not move BatchNorm statistics
        found = find_readout(model, x)
        if isinstance(found, str):
            return BinarizationResult(False, found, settings)
        return _run_tasks(model, found, x, indices, threat, attacks, settings, seed)


def _run_tasks(model: ModelUnderTest, readout: Readout, x: torch.Tensor, indices: list[int], threat: ThreatModel,
               attacks: list[Attack], settings: BinarizationSettings, seed: int) -> BinarizationResult:
    note = f"readout `{readout.name}` ({readout.features} features)"
    if readout.call > 1:
        note += (f", its call {readout.call} of {readout.call} per forward: the earlier calls (reverse "
                 "attention's masks) stay in the feature extractor, with their 10-class decisions")
    eps, norm = threat.eps, threat.norm
    failed_setup: list[int] = []
    passes: dict[str, list[int]] = {a.label: [] for a in attacks}
    misses: dict[str, list[int]] = {a.label: [] for a in attacks}
    validation, random_hits, tried = [], 0, 0
    for point, index in zip(x[:settings.points], indices[:settings.points], strict=False):
        tried += 1
        gen = torch.Generator().manual_seed(_task_seed(seed, index))
        inner = torch.cat([point[None].cpu(), _inner(norm, point, (1 - settings.gap) * eps, gen, settings.inner - 1)])
        outer = _on_sphere(norm, point, eps, gen, settings.boundary)
        train = torch.cat([inner, outer])
        labels = torch.cat([torch.zeros(len(inner), dtype=torch.long), torch.ones(len(outer), dtype=torch.long)])
        binary = _fit_readout(_features(model, readout, train), labels, settings.fit_steps,
                              settings.closeness)
        if binary is None:
            failed_setup.append(index)
            continue
        binarized = model.around(BinarizedModule(model.module, readout, binary.to(model.device)), 2)
        if not bool((binarized.predict(train) == labels).all()):  # the model did not reproduce its features
            failed_setup.append(index)
            continue
        fresh = _inner(norm, point, (1 - settings.gap) * eps, gen, settings.validation)
        validation.append(float((binarized.predict(fresh) == 0).float().mean()))
        draws = _inner(norm, point, eps, gen, settings.random_draws)
        random_hits += bool((binarized.predict(draws) == 1).any())
        x0 = point[None].to(model.device)
        y0 = torch.zeros(1, dtype=torch.long, device=model.device)
        for attack in attacks:
            with binarized.attack_mode():
                out = attack.run(binarized, x0, y0, threat, _task_seed(seed, index))
            try:
                held = verify_successes(binarized, x0, out.x_adv, y0, out.success.to(x0.device), threat, attack.label)
            except VerificationError as exc:
                raise VerificationError(f"binarization test, point {index}: {exc}") from exc
            (passes if bool(held.any()) else misses)[attack.label].append(index)
    outcomes = tuple(AttackPasses(a.label, len(passes[a.label]), len(passes[a.label]) + len(misses[a.label]),
                                  tuple(misses[a.label])) for a in attacks)
    mean_validation = sum(validation) / len(validation) if validation else float("nan")
    return dataclasses.replace(BinarizationResult(True, note, settings), tried=tried,
                               construction_failed=tuple(failed_setup), validation_accuracy=mean_validation,
                               random_baseline=random_hits, attacks=outcomes)
