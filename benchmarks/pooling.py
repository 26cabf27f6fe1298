"""defenses.nets.pooling.MaxPool2x2 against the stock nn.MaxPool2d(2), measured in one run on this machine.

Prints, per shape, the forward pass without autograd (where MaxPool2x2 differs from the stock pool)
of the pool alone and of SmallCNN as a whole (a committed checkpoint, and a copy with its pools
swapped for the stock ones): stock ms, ours ms, their ratio, and whether the outputs are
bit-identical. With autograd both run the stock kernel (tests/test_pooling.py checks gradients).

Usage: python benchmarks/pooling.py [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable

import torch
from tabulate import tabulate
from torch import nn

from bench import data
from bench.evaluation.committed import committed_checkpoint
from defenses.nets.pooling import MaxPool2x2
from defenses.training import checkpoints


def per_call_ms(step: Callable[[], object], seconds: float = 1.0) -> float:
    step()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        calls += 1
    return (time.perf_counter() - start) / calls * 1e3


def with_stock_pools(model: nn.Module) -> nn.Module:
    stock = copy.deepcopy(model)
    for module in stock.modules():
        for name, child in module.named_children():
            if isinstance(child, MaxPool2x2):
                setattr(module, name, nn.MaxPool2d(2))
    return stock


def inference(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(x)


def row(what: str, stock: Callable[[torch.Tensor], torch.Tensor], ours: Callable[[torch.Tensor], torch.Tensor],
        x: torch.Tensor) -> list[object]:
    same = torch.equal(inference(stock, x), inference(ours, x))
    t_stock, t_ours = per_call_ms(lambda: inference(stock, x)), per_call_ms(lambda: inference(ours, x))
    return [what, f"{t_stock:.2f}", f"{t_ours:.2f}", f"{t_stock / t_ours:.2f}", same]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for shape in [(65, 32, 24, 24), (65, 64, 8, 8), (500, 32, 24, 24)]:
        rows.append(row(f"pool {list(shape)}", nn.MaxPool2d(2), MaxPool2x2(), torch.relu(torch.randn(*shape))))
    path = committed_checkpoint("fashion-mnist", "pgd-at")
    assert path is not None, "the committed pgd-at checkpoint is missing"
    ours, _ = checkpoints.load(path)
    ours.eval()
    stock = with_stock_pools(ours)
    images, _ = data.load("fashion-mnist", data.Split.TEST).batch(slice(0, 500))
    for n in (65, 500):
        rows.append(row(f"SmallCNN (pgd-at), batch {n}", stock, ours, images[:n]))
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    print(tabulate(rows, headers=["forward, no autograd", "stock ms", "ours ms", "speed-up", "bit-identical"],
                   tablefmt="github"))


if __name__ == "__main__":
    main()
