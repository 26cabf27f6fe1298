"""The one object every attack sees: [0,1] inputs in, logits out, eval mode, passes counted."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

T = TypeVar("T")


@dataclass
class PassCounter:
    """Examples pushed through the model: forward passes, and backward passes through the output."""

    forward: int = 0
    backward: int = 0

    def snapshot(self) -> PassCounter:
        return PassCounter(self.forward, self.backward)

    def since(self, start: PassCounter) -> PassCounter:
        return PassCounter(self.forward - start.forward, self.backward - start.backward)


class Normalize(nn.Module):
    """Per-channel (x - mean) / std, so that the model takes raw [0,1] pixels."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ModelUnderTest(nn.Module):
    """Wraps a classifier for attacks.

    Normalization (if declared) happens inside, so attacks work in pixel space; forwards and
    backwards are counted per example, so every attack reports its cost in passes.
    """

    def __init__(self, module: nn.Module, num_classes: int,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        super().__init__()
        self.module = module
        self.num_classes = num_classes
        self.normalize = Normalize(mean, std) if mean is not None and std is not None else None
        self.passes = PassCounter()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = int(x.shape[0])
        self.passes.forward += n
        out = self.module(self.normalize(x) if self.normalize is not None else x)
        if out.requires_grad:
            out.register_hook(self._count_backward(n))
        return out

    def through(self, view: Callable[[nn.Module, torch.Tensor], T], x: torch.Tensor) -> T:
        """Call `view(module, normalized x)`: how adaptive attacks reach a defense's optional
        interfaces (auxiliary logits, logit scale) while passes are still counted — one forward
        per call, one backward per gradient that reaches x."""
        n = int(x.shape[0])
        self.passes.forward += n
        if x.requires_grad:
            x.register_hook(self._count_backward(n))
        return view(self.module, self.normalize(x) if self.normalize is not None else x)

    def _count_backward(self, n: int) -> Callable[[torch.Tensor], None]:
        def hook(grad: torch.Tensor) -> None:
            self.passes.backward += n

        return hook

    @property
    def device(self) -> torch.device:
        for tensor in self.module.parameters():
            return tensor.device
        return torch.device("cpu")

    @contextlib.contextmanager
    def attack_mode(self) -> Iterator[ModelUnderTest]:
        """Eval mode and frozen weights for the duration; both restored afterwards.

        Freezing the weights means backward passes compute input gradients only.
        """
        modes = [(m, m.training) for m in self.modules()]
        grads = [(p, p.requires_grad) for p in self.parameters()]
        self.eval()
        for p, _ in grads:
            p.requires_grad_(False)
        try:
            yield self
        finally:
            for m, mode in modes:
                m.train(mode)
            for p, flag in grads:
                p.requires_grad_(flag)

    @torch.no_grad()
    def true_class_margin(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """z_y − max_{j≠y} z_j per example (negative = misclassified), not counted as a pass: the
        harness records it at every attack's output as a fingerprint of what the attack did."""
        saved = self.passes.snapshot()
        logits = self(x.to(self.device)).float()
        self.passes = saved
        true = logits.gather(1, y.to(logits.device)[:, None]).squeeze(1)
        others = logits.scatter(1, y.to(logits.device)[:, None], float("-inf"))
        return (true - others.max(1).values).cpu()

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Predicted labels (not counted as attack passes: used for bookkeeping and verification)."""
        saved = self.passes.snapshot()
        preds = [self(x[i:i + batch_size].to(self.device)).argmax(1).cpu()
                 for i in range(0, x.shape[0], batch_size)]
        self.passes = saved
        return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)
