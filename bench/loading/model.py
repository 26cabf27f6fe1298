"""The one object every attack sees: [0,1] inputs in, logits out, eval mode, passes counted."""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

from bench.errors import ModelGuardError

T = TypeVar("T")


class Precision(str, enum.Enum):
    """The attack's arithmetic. fp32 is IEEE fp32 everywhere (TF32 off, although torch's default
    lets cuDNN convolutions use it); tf32 lets CUDA convolutions and matmuls use TF32 tensor cores;
    bf16/fp16 run the forward/backward under autocast. Logits are cast to fp32 before any loss,
    and every claimed success is re-verified in IEEE fp32, eager."""

    FP32 = "fp32"
    TF32 = "tf32"
    BF16 = "bf16"
    FP16 = "fp16"

    @property
    def dtype(self) -> torch.dtype:
        return {Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}.get(self, torch.float32)

    @property
    def autocast(self) -> bool:
        return self in (Precision.BF16, Precision.FP16)


@contextlib.contextmanager
def tensor_cores_for_fp32(enabled: bool) -> Iterator[None]:
    """TF32 for CUDA convolutions and matmuls on or off for the duration (process-wide flags, read
    when a kernel runs, backward passes included), restored afterwards."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@dataclass(frozen=True)
class Speed:
    """How the model is run; none of it may change what is measured beyond float effects."""

    precision: Precision = Precision.FP32
    channels_last: bool = False
    compile: bool = False


@dataclass
class PassCounter:
    """Examples pushed through the model: forward passes, and backward passes through the output."""

    forward: int = 0
    backward: int = 0

    def snapshot(self) -> PassCounter:
        return PassCounter(self.forward, self.backward)

    def since(self, start: PassCounter) -> PassCounter:
        return PassCounter(self.forward - start.forward, self.backward - start.backward)


def class_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """z_y − max_{j≠y} z_j per example: negative where the example is misclassified."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    return true - others.max(1).values


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
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 speed: Speed = Speed()) -> None:
        super().__init__()
        self.module = module
        self.num_classes = num_classes
        self.normalize = Normalize(mean, std) if mean is not None and std is not None else None
        self.passes = PassCounter()
        self.speed = speed
        # set by the guards when two identical forwards differ and the caller allowed it: every
        # prediction is then the majority vote of `draws` forwards (clean accuracy, verification),
        # and a claimed success the vote denies is dropped, not a bug in the attack
        self.randomized = False
        self.draws = 1
        self._precision = speed.precision
        if speed.channels_last:
            self.module.to(memory_format=torch.channels_last)
        # the compiled graph shares the module's parameters; interfaces (forward_all, ...) stay
        # eager. Bound methods, not modules, so nothing is registered twice.
        self._eager: Callable[[torch.Tensor], torch.Tensor] = module.__call__
        self._run = self._eager
        if speed.compile:
            compiled: nn.Module = torch.compile(module, dynamic=True)  # type: ignore[assignment]
            self._run = compiled.__call__

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = int(x.shape[0])
        self.passes.forward += n
        z = self.normalize(x) if self.normalize is not None else x
        if self.speed.channels_last and z.ndim == 4:
            z = z.contiguous(memory_format=torch.channels_last)
        if self._precision.autocast:
            with torch.autocast(device_type=z.device.type, dtype=self._precision.dtype):
                out = self._run(z)
        else:
            out = self._run(z)
        if not isinstance(out, torch.Tensor):
            raise ModelGuardError(f"the model returns a {type(out).__name__}, not a tensor of logits (logits "
                                  "and features?): wrap it so that forward returns the logits only")
        out = out.float() if self._precision.autocast else out
        if out.requires_grad:
            out.register_hook(self._count_backward(n))
        return out

    def around(self, module: nn.Module, num_classes: int) -> ModelUnderTest:
        """Another classifier behind this one's input handling (its normalization), in fp32 eager:
        how the binarization test attacks the model with its readout replaced."""
        other = ModelUnderTest(module, num_classes)
        other.normalize = self.normalize
        return other

    @contextlib.contextmanager
    def full_precision(self) -> Iterator[None]:
        """The reference model for the duration — IEEE fp32, eager (not compiled): how successes
        are verified, clean accuracy measured and margins recorded."""
        saved = self._precision, self._run
        self._precision, self._run = Precision.FP32, self._eager
        try:
            with tensor_cores_for_fp32(False):
                yield
        finally:
            self._precision, self._run = saved

    @property
    def reference_arithmetic(self) -> bool:
        """Attacks run in the reference arithmetic itself (IEEE fp32, eager)."""
        return self.speed.precision is Precision.FP32 and not self.speed.compile

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
            with tensor_cores_for_fp32(self.speed.precision is Precision.TF32):
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
        with self.full_precision():
            logits = self(x.to(self.device)).float()
        self.passes = saved
        return class_margin(logits, y.to(logits.device)).cpu()

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Predicted labels (not counted as attack passes: used for bookkeeping and verification);
        for a randomized model the most frequent label over `draws` forwards (ties: the smaller)."""
        saved = self.passes.snapshot()
        draws = self.draws if self.randomized else 1
        with self.full_precision():
            preds = [self._vote(x[i:i + batch_size].to(self.device), draws)
                     for i in range(0, x.shape[0], batch_size)]
        self.passes = saved
        return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)

    def _vote(self, x: torch.Tensor, draws: int) -> torch.Tensor:
        if draws == 1:
            return self(x).argmax(1).cpu()
        counts = torch.zeros(x.shape[0], self.num_classes, dtype=torch.long)
        for _ in range(draws):
            counts += torch.nn.functional.one_hot(self(x).argmax(1).cpu(), self.num_classes)
        return counts.argmax(1)
