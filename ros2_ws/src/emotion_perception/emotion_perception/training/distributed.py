"""PyTorch's own distributed engine for training, evaluation and the feature cache.

``torchrun --nproc_per_node N emotion-train ...`` (or several machines through torchrun's
rendezvous) starts N processes with ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` set; ``setup``
joins them into one process group: NCCL with one GPU per process on CUDA, gloo on CPU. A plain
``emotion-train`` (no torchrun) is a world of one, and every helper here is then a no-op.

Evaluation shards the clips without padding (``EvalShardSampler``) and sums confusion matrices
over ranks, so every clip is scored exactly once; ``DistributedSampler`` pads the training list
so every rank runs the same number of steps, as DDP needs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0 writes logs, checkpoints, reports and draws progress bars."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def env_world() -> World:
    """The world torchrun describes in the environment (a world of one without torchrun)."""
    return World(
        rank=int(os.environ.get("RANK", 0)),
        size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )


def setup(device: torch.device) -> tuple[World, torch.device]:
    """Join torchrun's process group; returns the world and this process's device.

    On CUDA each process takes GPU ``LOCAL_RANK`` and NCCL; on CPU the backend is gloo.
    """
    world = env_world()
    if not world.distributed:
        return world, device
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return world, device


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over ranks (in place; returned for convenience). gloo needs CPU tensors, NCCL CUDA ones."""
    if active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather(obj) -> list:
    """One picklable object from each rank, in rank order ([obj] without a process group)."""
    if not active():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if active():
        dist.barrier()


class EvalShardSampler(Sampler):
    """Indices ``rank, rank + size, ...``: each item on exactly one rank, no padding, no repeats."""

    def __init__(self, length: int, world: World):
        self.indices = range(world.rank, length, world.size)

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
