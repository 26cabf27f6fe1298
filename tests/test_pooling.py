"""MaxPool2x2 is nn.MaxPool2d(2) bit for bit: values, gradients, ties, NaN, odd sizes, checkpoints."""

import copy

import pytest
import torch
from torch import nn

from defenses.nets.pooling import MaxPool2x2


def _inputs() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    relu = torch.relu(torch.randn(8, 3, 12, 12, generator=g))  # many tied zeros, as after a ReLU
    odd = torch.randn(2, 4, 7, 9, generator=g)
    rounded = torch.randn(2, 2, 6, 6, generator=g).round()  # ties among positive values too
    nans = torch.randn(2, 2, 6, 6, generator=g)
    nans[0, 0, 0, 1] = nans[1, 1, 3, 2] = nans[1, 1, 2, 3] = float("nan")
    channels_last = torch.randn(3, 5, 8, 8, generator=g).contiguous(memory_format=torch.channels_last)
    return [relu, odd, rounded, nans, channels_last]


@pytest.mark.parametrize("x", _inputs(), ids=["relu-ties", "odd-size", "rounded", "nan", "channels-last"])
@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode], ids=["no-grad", "inference"])
def test_values_without_autograd_are_the_stock_kernels(x, context):
    with context():
        ours, stock = MaxPool2x2()(x), nn.MaxPool2d(2)(x)
    assert ours.shape == stock.shape
    assert torch.equal(ours.isnan(), stock.isnan())
    assert torch.equal(ours.nan_to_num(), stock.nan_to_num())


@pytest.mark.parametrize("x", _inputs()[:3], ids=["relu-ties", "odd-size", "rounded"])
def test_gradients_are_the_stock_kernels_including_double_backward(x):
    def grads(pool):
        leaf = x.clone().requires_grad_(True)
        (first,) = torch.autograd.grad(pool(leaf).square().sum(), leaf, create_graph=True)
        (second,) = torch.autograd.grad(first.sum(), leaf)
        return first.detach(), second

    ours, stock = grads(MaxPool2x2()), grads(nn.MaxPool2d(2))
    assert torch.equal(ours[0], stock[0]) and torch.equal(ours[1], stock[1])
    assert ours[0].abs().sum() > 0


def test_a_committed_checkpoint_scores_and_differentiates_as_with_the_stock_pool(committed_robust, points):
    x, y = points
    ours = committed_robust
    stock = copy.deepcopy(ours)
    swapped = 0
    for module in stock.modules():
        for name, child in module.named_children():
            if isinstance(child, MaxPool2x2):
                setattr(module, name, nn.MaxPool2d(2))
                swapped += 1
    assert swapped == 2  # SmallCNN's two pools: the test must compare something

    def scored(model):
        with torch.inference_mode():
            logits = model(x)
        leaf = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(nn.functional.cross_entropy(model(leaf), y), leaf)
        return logits, grad

    (a, ga), (b, gb) = scored(ours), scored(stock)
    assert torch.equal(a, b) and torch.equal(ga, gb)


def test_state_dicts_and_the_module_contract_are_nn_maxpool2ds():
    pool = MaxPool2x2()
    assert isinstance(pool, nn.MaxPool2d) and pool.kernel_size == 2 and pool.stride == 2
    assert pool.state_dict() == {} and not list(pool.parameters())


def test_a_traced_or_exported_smallcnn_captures_the_stock_pool(committed_robust, points):
    """A captured graph must not depend on whether a gradient was asked for: tracing checks that."""
    module = committed_robust.module
    x = points[0][:4]
    traced = torch.jit.trace(module.eval(), x)
    assert "max_pool2d" in str(traced.inlined_graph)
    with torch.inference_mode():
        assert torch.equal(traced(x), module(x))
