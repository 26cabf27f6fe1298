"""Pre-flight checks on the model under test: each failure names what is wrong and what to do."""

from __future__ import annotations

import torch

from bench.errors import ModelGuardError, ModelInputError
from bench.loading.model import ModelUnderTest

RANDOMNESS_REPEATS = 4  # forwards compared with the first to detect a randomized model


def check_input_range(x: torch.Tensor) -> None:
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ModelGuardError(
            f"inputs must be pixels in [0, 1], got values in [{lo:.3f}, {hi:.3f}]: do not normalize "
            "the data; declare the normalization so it happens inside the model")


def _check_logits(out: torch.Tensor, n: int, num_classes: int) -> None:
    if out.ndim != 2 or out.shape[0] != n:
        raise ModelGuardError(f"the model must return logits of shape (N, K); got {tuple(out.shape)}")
    if out.shape[1] != num_classes:
        raise ModelGuardError(f"the model returns {out.shape[1]} classes but the dataset has "
                              f"{num_classes}: wrong checkpoint or wrong --dataset?")
    if not torch.isfinite(out).all():
        raise ModelGuardError("the model returns NaN or infinite logits")
    sums = out.sum(1)
    if out.min() >= 0 and out.max() <= 1 and torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        raise ModelGuardError(
            "the model returns probabilities (rows in [0,1] summing to 1), not logits: remove the "
            "final softmax; attacks on probabilities have vanishing gradients and overstate robustness")


def preflight(model: ModelUnderTest, x: torch.Tensor, *, allow_randomized: bool = False) -> list[str]:
    """Run the model guards on a sample batch; returns warnings that were allowed through."""
    warnings: list[str] = []
    saved = model.passes.snapshot()
    x = x.to(model.device)
    try:
        with torch.no_grad():  # several repeats: a defense drawing once per batch can repeat a draw by chance
            first, *repeats = (model(x) for _ in range(RANDOMNESS_REPEATS + 1))
    except ModelGuardError:
        raise
    except Exception as exc:  # a user's model can fail in any way on inputs it does not expect
        raise ModelInputError(
            f"the model fails on inputs of shape {tuple(x.shape[1:])} (N×C×H×W pixels of the chosen "
            f"--dataset): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}. Wrong --dataset? "
            "A torch.export program needs a dynamic batch dimension") from None
    finally:
        model.passes = saved
    _check_logits(first, x.shape[0], model.num_classes)
    scale = 1.0 + float(first.abs().max())
    if max(float((first - again).abs().max()) for again in repeats) > 1e-5 * scale:
        message = ("the model is randomized: two identical forwards differ. Point estimates of "
                   "robust accuracy are not reliable")
        if not allow_randomized:
            raise ModelGuardError(message + "; evaluate it with --allow-randomized and an "
                                  "expectation-over-transformation attack such as aa-rand")
        model.randomized = True
        warnings.append(message)
    return warnings
