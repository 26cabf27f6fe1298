"""Data-parallel training under torchrun: every rank takes a slice of each batch, gradients averaged.

This is DistributedDataParallel's algorithm applied directly to the parameters: methods reach the
model through several entry points (`forward_all`, `embed`, teacher and EMA copies), which DDP's
forward wrapper would not see. Backend: NCCL on CUDA, gloo on CPU. Single process: all no-ops.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import nn


def launched_by_torchrun() -> bool:
    """torchrun set the rank variables: even a single rank joins a process group (and runs its
    collectives), so a one-GPU machine still exercises NCCL."""
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def setup() -> tuple[int, int]:
    """(rank, world size); initializes the process group when torchrun started several ranks."""
    if not launched_by_torchrun():
        return 0, 1
    if not dist.is_initialized():
        if torch.cuda.is_available():  # NCCL needs each rank's current device set before any collective
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def backend() -> str | None:
    """The process group's backend (nccl, gloo), or None outside torchrun."""
    return str(dist.get_backend()) if active() else None


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """All-reduce and average gradients (missing ones count as zero, identically on every rank)."""
    if not active():
        return
    world = dist.get_world_size()
    for p in params:
        if not p.requires_grad:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad /= world


def average_buffers(module: nn.Module) -> None:
    """BatchNorm running statistics averaged over ranks after each epoch, so rank 0 saves all data's."""
    if not active():
        return
    for buf in module.buffers():
        if buf.dtype.is_floating_point:
            dist.all_reduce(buf)
            buf /= dist.get_world_size()


def barrier() -> None:
    if active():
        dist.barrier()


def teardown() -> None:
    if active():
        dist.destroy_process_group()
