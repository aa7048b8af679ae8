"""Data-parallel meta-training over processes started by ``torchrun``.

Every process draws the same meta-batch from the same seeded sampler, keeps its own slice of the
tasks, and the meta-gradients are averaged with one all-reduce; the update is then the same on
every process, and equal (to floating-point rounding) to the single-process update on the whole
meta-batch. Rank 0 alone validates, logs and writes checkpoints. Works with ``gloo`` on CPUs and
``nccl`` on GPUs, on one machine or many (torchrun's rendezvous flags).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from fastadapt.errors import ConfigError
from fastadapt.nn.params import flatten, unflatten
from fastadapt.tasks import TaskBatch


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (a world of one when not distributed)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def shard(self, batch: TaskBatch) -> TaskBatch:
        """This process's equal slice of a meta-batch."""
        if not self.distributed:
            return batch
        if len(batch) % self.size:
            raise ConfigError(
                f"train.meta_batch={len(batch)} does not split evenly over {self.size} processes: "
                f"use a multiple of {self.size}"
            )
        per = len(batch) // self.size
        return batch[self.rank * per: (self.rank + 1) * per]

    def average(self, tensors: list[torch.Tensor]) -> None:
        """Replace each tensor (in place) by its mean over the processes, in one all-reduce."""
        if not self.distributed or not tensors:
            return
        flat = flatten(tensors)
        dist.all_reduce(flat)
        flat /= self.size
        for t, mean in zip(tensors, unflatten(flat, tensors), strict=True):
            t.copy_(mean)

    def from_main(self, value: Any) -> Any:
        """Rank 0's ``value`` on every process (e.g. a run folder named by the clock)."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every process if ``flag`` is true on any (so that all stop at the same step)."""
        if not self.distributed:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())


def current_world(device: torch.device) -> World:
    """The world this process belongs to, joined on first use when started by torchrun (``nccl``
    for a CUDA ``device``, else ``gloo``); a world of one otherwise."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_available():
        raise ConfigError("this PyTorch build has no torch.distributed: run a single process")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), local_rank)


def place(device: torch.device, world: World) -> torch.device:
    """The device of this process: with several processes on CUDA, the GPU of its local rank."""
    if world.distributed and device.type == "cuda":
        return torch.device("cuda", world.local_rank)
    return device


def leave_world() -> None:
    """Leave the process group (at the end of a distributed run)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
