"""Deliberately broken models, for `bench audit` demonstrations and its tests.

Each is Fashion-MNIST's SmallCNN with one defect in front of or behind it, built by a factory
so it can be evaluated as a user model, e.g. with the committed standard checkpoint's weights:

    bench audit --model examples.toy_models:rounded_smallcnn \
        --weights checkpoints/fashion-mnist/standard-smallcnn.pt

- `rounded_smallcnn`: inputs rounded to 8 bits. Rounding has zero gradient almost everywhere, so
  gradient attacks see nothing, yet an 8-bit grid (step 1/255) is far finer than ε = 0.1: the
  model is exactly as robust as the CNN behind it (≈ 0% for the standard checkpoint).
- `quantized_smallcnn`: inputs quantized to 8 levels (step 1/7 > ε = 0.1): again zero gradients,
  and a perturbation changes the model's input only where it pushes a pixel across a level.
- `hard_argmax_smallcnn`: returns 10·onehot(argmax) of the CNN's logits — the hard mask of
  reverse attention taken to the limit: the forward pass decides as the CNN does, the gradient is
  zero everywhere, and only black-box search can find what the CNN's gradients would have.
- `softmax_smallcnn`: returns probabilities instead of logits.
- `noisy_smallcnn`: adds fresh Gaussian noise (σ = 0.1) to every input — a randomized model;
  with the committed pgd-at weights, Gaussian noise injection in front of an adversarially
  trained CNN.
- `resize_pad_smallcnn`: shrinks every input to a random size (20–28 pixels) and pads it back to
  28×28 at a random offset (Xie et al.'s random resizing and padding, in miniature) — a randomized
  model; with the committed standard weights, a randomization defense around an undefended CNN.
"""

from __future__ import annotations

import torch

from bench.data import DATASETS
from defenses.nets.archs import SmallCNN

ROUNDING_LEVELS = 255
QUANTIZED_LEVELS = 7  # 8 values 0, 1/7, ..., 1
HARD_ARGMAX_SCALE = 10.0
NOISE_STD = 0.1
RESIZE_SIZES = (20, 28)  # smallest and largest side of the random resize, inclusive


class RoundedInput(SmallCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.round(x * ROUNDING_LEVELS) / ROUNDING_LEVELS)


class QuantizedInput(SmallCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.round(x * QUANTIZED_LEVELS) / QUANTIZED_LEVELS)


class HardArgmaxOutput(SmallCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        decided = torch.nn.functional.one_hot(logits.argmax(1), logits.shape[1]).to(logits.dtype)
        return HARD_ARGMAX_SCALE * decided + 0.0 * logits  # in the graph, with a zero gradient


class SoftmaxOutput(SmallCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).softmax(1)


class NoisyInput(SmallCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x + NOISE_STD * torch.randn_like(x))


class RandomResizePad(SmallCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = x.shape[-1]
        size = int(torch.randint(RESIZE_SIZES[0], RESIZE_SIZES[1] + 1, ()))
        small = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        left, top = (int(torch.randint(0, side - size + 1, ())) for _ in range(2))
        padded = torch.nn.functional.pad(small, (left, side - size - left, top, side - size - top))
        return super().forward(padded)


def plain_smallcnn() -> SmallCNN:
    return SmallCNN(DATASETS.get("fashion-mnist"))


def rounded_smallcnn() -> RoundedInput:
    return RoundedInput(DATASETS.get("fashion-mnist"))


def quantized_smallcnn() -> QuantizedInput:
    return QuantizedInput(DATASETS.get("fashion-mnist"))


def hard_argmax_smallcnn() -> HardArgmaxOutput:
    return HardArgmaxOutput(DATASETS.get("fashion-mnist"))


def softmax_smallcnn() -> SoftmaxOutput:
    return SoftmaxOutput(DATASETS.get("fashion-mnist"))


def noisy_smallcnn() -> NoisyInput:
    return NoisyInput(DATASETS.get("fashion-mnist"))


def resize_pad_smallcnn() -> RandomResizePad:
    return RandomResizePad(DATASETS.get("fashion-mnist"))
