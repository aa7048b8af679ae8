"""Meta-RL's task source: the parameters of an RL family's tasks (goals, velocities, directions), drawn from a
checkpointable seeded stream for training and replayed as a fixed sequence for evaluation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from fastadapt.rl.families import TaskFamily


@dataclass
class RLTaskBatch:
    """A meta-batch of RL tasks: their parameters ``[n, task_dim]``; they are simulator settings and stay on the CPU."""

    tasks: Tensor

    def __len__(self) -> int:
        return self.tasks.shape[0]

    def __getitem__(self, index: slice) -> RLTaskBatch:
        return RLTaskBatch(self.tasks[index])

    def shard(self, rank: int, size: int) -> RLTaskBatch:
        """Process ``rank``'s equal slice of the batch among ``size`` processes (the trainer checks divisibility)."""
        per = len(self) // size
        return self[rank * per : (rank + 1) * per]


class RLTasks:
    """The tasks of an RL family: ``sample(n)`` draws from a seeded stream that checkpoints keep (``state_dict``),
    ``episodes(count)`` replays a fixed sequence from a seed, so that every run and method sees the same tasks."""

    def __init__(self, family: TaskFamily, seed: int = 0) -> None:
        self.family, self.seed = family, seed
        self.generator = torch.Generator().manual_seed(seed)

    def __repr__(self) -> str:
        return f"RLTasks({self.family.name}, seed={self.seed})"

    def sample(self, n: int = 1) -> RLTaskBatch:
        """Draw ``n`` tasks from the stream."""
        if n < 1:
            raise ValueError(f"sample needs n >= 1, got {n}")
        return RLTaskBatch(self.family.sample_tasks(n, self.generator))

    def episodes(self, count: int, batch_size: int = 32, seed: int | None = None) -> Iterator[RLTaskBatch]:
        """``count`` fixed tasks in batches, drawn one by one from their own generator seeded by ``seed`` (default
        the source's): the sequence depends on neither ``batch_size`` nor the training stream, which it never moves."""
        if count < 1 or batch_size < 1:
            raise ValueError(f"episodes needs count >= 1 and batch_size >= 1, got {count} and {batch_size}")
        generator = torch.Generator().manual_seed(self.seed if seed is None else seed)
        for start in range(0, count, batch_size):
            draws = [self.family.sample_tasks(1, generator) for _ in range(min(batch_size, count - start))]
            yield RLTaskBatch(torch.cat(draws))

    def state_dict(self) -> dict[str, Tensor]:
        """The position in the stream, for exact resumption (the same format as a ``TaskDistribution``'s)."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.generator.set_state(state["generator"])
