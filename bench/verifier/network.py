"""The network as a verifier sees it: a chain of affine maps, ReLUs and max-pools.

A model becomes a `Chain` only through an allow-list of exact layer types (`LAYERS`): Linear,
Conv2d, eval-mode BatchNorm, the input normalization, Flatten, AvgPool2d, ReLU, MaxPool2d with
non-overlapping windows, and Identity/Dropout (identities at evaluation). Any other layer is refused
in one line naming it. A module that is not a chain by type (our SmallCNN, whose forward is written
out) may declare the chain it computes with `layer_chain()`; the declaration is believed only after
the chain reproduces the model's logits (`check_equivalent`), so a skip connection or a functional op
outside the layers is refused rather than verified wrongly.

`Chain.of(model, shape, dtype=torch.float64)` copies the parameters (the certificates' arithmetic);
`dtype=None` keeps the live parameters, so that certified training can differentiate the bounds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import BenchError
from bench.loading.model import Normalize

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Affine:
    """x ↦ Lx + b on a batch; `magnitude(r)` is |L| r, what an interval's radius becomes."""

    where: str
    apply: Callable[[torch.Tensor], torch.Tensor]
    magnitude: Callable[[torch.Tensor], torch.Tensor]
    in_shape: Shape
    out_shape: Shape
    transposed: Callable[[torch.Tensor], torch.Tensor] | None = None  # Lᵀ where a direct form is known

    def bias(self, like: torch.Tensor) -> torch.Tensor:
        return self.apply(like.new_zeros((1, *self.in_shape)))[0]

    def transpose(self, a: torch.Tensor) -> torch.Tensor:
        """Lᵀ applied to each row of `a` ([rows, *out_shape] → [rows, *in_shape])."""
        if self.transposed is not None:
            return self.transposed(a)
        zero = a.new_zeros((a.shape[0], *self.in_shape))
        pullback = torch.func.vjp(self.apply, zero)[1]
        return pullback(a)[0]


@dataclass(frozen=True)
class Relu:
    where: str
    shape: Shape


@dataclass(frozen=True)
class MaxPool:
    """Max over non-overlapping k×k windows (a last odd row or column dropped, as floor pooling does)."""

    where: str
    kernel: int
    in_shape: Shape
    out_shape: Shape

    def windows(self, x: torch.Tensor) -> torch.Tensor:
        """[b, c, h, w] → [b, c, h/k, w/k, k·k]: each window's entries."""
        k = self.kernel
        c, h, w = self.out_shape
        x = x[:, :, :h * k, :w * k].reshape(x.shape[0], c, h, k, w, k)
        return x.permute(0, 1, 2, 4, 3, 5).reshape(x.shape[0], c, h, w, k * k)

    def unwindow(self, v: torch.Tensor) -> torch.Tensor:
        """The inverse of `windows`, zero where floor pooling dropped a row or column."""
        k = self.kernel
        c, h, w = self.out_shape
        b = v.shape[0]
        x = v.reshape(b, c, h, w, k, k).permute(0, 1, 2, 4, 3, 5).reshape(b, c, h * k, w * k)
        return F.pad(x, (0, self.in_shape[2] - w * k, 0, self.in_shape[1] - h * k))


Op = Affine | Relu | MaxPool
Param = Callable[[torch.Tensor], torch.Tensor]
Converter = Callable[[nn.Module, str, Shape, Param], list[Op]]
LAYERS: dict[type[nn.Module], Converter] = {}
ADMITTED = ("Linear, Conv2d, BatchNorm (eval), the input normalization, Flatten, AvgPool2d, ReLU, "
            "MaxPool2d (kernel = stride), Identity, Dropout, and nn.Sequential chains of them")


def admit(*types: type[nn.Module]) -> Callable[[Converter], Converter]:
    """Register the converter of exactly these layer types (subclasses are not admitted by inheritance)."""

    def register(converter: Converter) -> Converter:
        for t in types:
            LAYERS[t] = converter
        return converter

    return register


def same_as(layer: type[nn.Module], admitted: type[nn.Module]) -> None:
    """Admit `layer` as `admitted`: for a subclass that computes the same function (e.g. a faster
    kernel for the same pooling). Its equivalence is still checked on every chain built from it."""
    LAYERS[layer] = LAYERS[admitted]


def _refuse(module: nn.Module, where: str, why: str) -> BenchError:
    return BenchError(f"cannot bound layer {where or '(the model)'} ({type(module).__name__}): {why}")


def _affine(where: str, shape: Shape, apply: Callable[[torch.Tensor], torch.Tensor],
            magnitude: Callable[[torch.Tensor], torch.Tensor], like: torch.Tensor,
            transposed: Callable[[torch.Tensor], torch.Tensor] | None = None) -> list[Op]:
    with torch.no_grad():
        out = apply(like.new_zeros((1, *shape)))
    return [Affine(where, apply, magnitude, shape, tuple(out.shape[1:]), transposed)]


@admit(nn.Linear)
def _linear(m: nn.Module, where: str, shape: Shape, param: Param) -> list[Op]:
    assert isinstance(m, nn.Linear)
    if shape != (m.in_features,):
        raise _refuse(m, where, f"takes vectors of {m.in_features}, gets {shape} (a Flatten missing?)")
    w = param(m.weight)
    b = param(m.bias) if m.bias is not None else None
    return _affine(where, shape, lambda x: F.linear(x, w, b), lambda r: F.linear(r, w.abs()), w, lambda a: a @ w)


@admit(nn.Conv2d)
def _conv(m: nn.Module, where: str, shape: Shape, param: Param) -> list[Op]:
    assert isinstance(m, nn.Conv2d)
    if m.padding_mode != "zeros" or isinstance(m.padding, str) and m.padding != "valid":
        raise _refuse(m, where, "only zero padding given as numbers is bounded")
    w = param(m.weight)
    b = param(m.bias) if m.bias is not None else None
    opts = {"stride": m.stride, "padding": m.padding, "dilation": m.dilation, "groups": m.groups}
    ops = _affine(where, shape, lambda x: F.conv2d(x, w, b, **opts),  # type: ignore[arg-type]
                  lambda r: F.conv2d(r, w.abs(), None, **opts), w)  # type: ignore[arg-type]
    if isinstance(m.padding, str):  # "valid"
        return ops
    out = ops[0].out_shape  # type: ignore[union-attr]
    extra = tuple(shape[1 + d] - ((out[1 + d] - 1) * m.stride[d] - 2 * m.padding[d] + m.dilation[d]
                                  * (m.kernel_size[d] - 1) + 1) for d in range(2))

    def transposed(a: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose2d(a, w, None, m.stride, m.padding, extra, m.groups, m.dilation)  # type: ignore[arg-type]

    first = ops[0]
    assert isinstance(first, Affine)
    return [dataclasses.replace(first, transposed=transposed)]


def _channelwise(where: str, shape: Shape, scale: torch.Tensor, shift: torch.Tensor) -> list[Op]:
    view = (1, -1, *([1] * (len(shape) - 1)))
    s, t = scale.reshape(view), shift.reshape(view)
    return _affine(where, shape, lambda x: x * s + t, lambda r: r * s.abs(), scale)


@admit(nn.BatchNorm1d, nn.BatchNorm2d)
def _batchnorm(m: nn.Module, where: str, shape: Shape, param: Param) -> list[Op]:
    assert isinstance(m, nn.modules.batchnorm._BatchNorm)
    if m.training or m.running_mean is None or m.running_var is None:
        raise _refuse(m, where, "BatchNorm is bounded with its running statistics (eval mode) only")
    scale = param(m.running_var).add(m.eps).rsqrt()
    if m.weight is not None:
        scale = scale * param(m.weight)
    shift = -param(m.running_mean) * scale + (param(m.bias) if m.bias is not None else 0)
    return _channelwise(where, shape, scale, shift)


@admit(Normalize)
def _normalize(m: nn.Module, where: str, shape: Shape, param: Param) -> list[Op]:
    assert isinstance(m, Normalize)
    mean, std = param(m.mean).flatten(), param(m.std).flatten()
    if mean.numel() == 1 and shape[0] != 1:
        mean, std = mean.expand(shape[0]), std.expand(shape[0])
    return _channelwise(where, shape, 1 / std, -mean / std)


@admit(nn.Flatten)
def _flatten(m: nn.Module, where: str, shape: Shape, param: Param) -> list[Op]:
    assert isinstance(m, nn.Flatten)
    if m.start_dim != 1 or m.end_dim != -1:
        raise _refuse(m, where, "only Flatten(start_dim=1) is bounded")
    if len(shape) == 1:
        return []
    n = 1
    for d in shape:
        n *= d
    return [Affine(where, lambda x: x.flatten(1), lambda r: r.flatten(1), shape, (n,))]


@admit(nn.AvgPool2d)
def _avgpool(m: nn.Module, where: str, shape: Shape, param: Param) -> list[Op]:
    assert isinstance(m, nn.AvgPool2d)
    if m.padding != 0 or m.ceil_mode or m.divisor_override is not None:
        raise _refuse(m, where, "only AvgPool2d without padding, ceil mode or divisor override is bounded")
    k, s = m.kernel_size, m.stride

    def pool(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, k, s)  # nonnegative weights: |L| = L

    return _affine(where, shape, pool, pool, param(torch.zeros(())))


@admit(nn.MaxPool2d)
def _maxpool(m: nn.Module, where: str, shape: Shape, param: Param) -> list[Op]:
    assert isinstance(m, nn.MaxPool2d)
    k = m.kernel_size
    stride = m.stride if m.stride is not None else k
    if not (isinstance(k, int) and stride == k and m.padding == 0 and m.dilation == 1
            and not m.ceil_mode and not m.return_indices):
        raise _refuse(m, where, "only max-pooling over non-overlapping windows (kernel = stride, no padding) "
                      "is bounded")
    c, h, w = shape
    return [MaxPool(where, k, shape, (c, h // k, w // k))]


@admit(nn.ReLU)
def _relu(m: nn.Module, where: str, shape: Shape, param: Param) -> list[Op]:
    return [Relu(where, shape)]


@admit(nn.Identity, nn.Dropout)
def _identity(m: nn.Module, where: str, shape: Shape, param: Param) -> list[Op]:
    return []


def _shape_after(ops: list[Op], shape: Shape) -> Shape:
    if not ops:
        return shape
    last = ops[-1]
    return last.shape if isinstance(last, Relu) else last.out_shape


@dataclass(frozen=True)
class Chain:
    ops: tuple[Op, ...]
    in_shape: Shape

    @classmethod
    def of(cls, model: nn.Module, in_shape: Shape, dtype: torch.dtype | None = torch.float64) -> Chain:
        """The chain `model` computes, its parameters copied to `dtype` (None: the live parameters)."""

        def param(t: torch.Tensor) -> torch.Tensor:
            return t if dtype is None else t.detach().to(dtype)

        ops: list[Op] = []
        _collect(model, "", in_shape, param, ops)
        if not any(isinstance(op, Affine) for op in ops):
            raise BenchError("the model has no layer to bound")
        return cls(tuple(ops), in_shape)

    @property
    def out_shape(self) -> Shape:
        return _shape_after(list(self.ops), self.in_shape)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.ops:
            if isinstance(op, Affine):
                x = op.apply(x)
            elif isinstance(op, Relu):
                x = torch.relu(x)
            else:
                x = op.windows(x).amax(dim=-1)
        return x


def _collect(module: nn.Module, where: str, shape: Shape, param: Param, ops: list[Op]) -> None:
    converter = LAYERS.get(type(module))
    if converter is not None:
        ops.extend(converter(module, where, shape, param))
        return
    if type(module) is nn.Sequential:
        children = list(module.named_children())
    elif callable(declared := getattr(module, "layer_chain", None)):
        names = {id(m): name for name, m in module.named_modules()}
        children = [(names.get(id(m), "?"), m) for m in declared()]
    else:
        raise _refuse(module, where, f"the verifier admits {ADMITTED}")
    for name, child in children:
        _collect(child, f"{where}.{name}" if where else name, _shape_after(ops, shape), param, ops)


def check_equivalent(model: nn.Module, chain: Chain, x: torch.Tensor) -> None:
    """Refuse a chain that does not compute the model's logits on `x` (and random points beside them)."""
    probe = torch.cat([x, torch.rand(x[:8].shape, generator=torch.Generator().manual_seed(0))])
    with torch.no_grad():
        want = model(probe).double()
        got = chain(probe.double())
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-4, atol=1e-4 * (1 + float(want.abs().max()))):
        raise BenchError(f"{type(model).__name__}'s forward is not the chain of its layers (a skip connection, or "
                         "a computation outside its layers?): the verifier bounds chains only")
