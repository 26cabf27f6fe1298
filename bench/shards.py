"""Sharding an evaluation over torchrun ranks: whole batches, so flags equal a one-process run.

Every rank computes the same batches of a stage (they depend only on the flags, which all ranks
share) and attacks those with `batch % world == rank`; the batch results are gathered, in batch
order, at the end of each stage. Each batch is attacked with the same seed and the same members as
in a one-process run, so even attacks whose randomness depends on the batch (the official
AutoAttack) give identical flags. Backend: NCCL on CUDA, gloo on CPU; one process: no-ops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.distributed as dist

from bench import distributed


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world: int = 1

    @property
    def sharded(self) -> bool:
        return self.world > 1

    @property
    def writes(self) -> bool:
        """Only rank 0 writes the record, the resume state and the adversarial examples."""
        return self.rank == 0

    def mine(self, batch: int) -> bool:
        return batch % self.world == self.rank

    def gather(self, items: list[Any]) -> list[Any]:
        """Every rank's items, concatenated (identical on all ranks)."""
        if not self.sharded:
            return items
        everyone: list[list[Any] | None] = [None] * self.world
        dist.all_gather_object(everyone, items)
        return [item for part in everyone for item in (part or [])]

    def barrier(self) -> None:
        distributed.barrier()


def join() -> Shard:
    rank, world = distributed.setup()
    return Shard(rank, world)
