"""``RLMetaLearner``: what a meta-RL method is to the trainer and the evaluators.

A method collects trajectories with per-task parameters (``collect``), adapts to tasks by policy-gradient steps
on them (``adapt``) and makes its own outer update (``outer_step``: sample, adapt, sample again, and change the
parameters, e.g. by TRPO's step). The trainer shares its run folder, checkpoints, resume, clock and logs with the
supervised learners but calls ``outer_step`` instead of a gradient and an optimizer; evaluation measures the
average return before and after each adaptation step (``adaptation_returns``).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor, nn

from fastadapt.nn.params import Params
from fastadapt.rl.episodes import Episodes
from fastadapt.rl.tasks import RLTaskBatch

Trajectories = list[tuple[Episodes, Tensor]]  # per adaptation step: the episodes and their advantages ``[T, B]``


class RLMetaLearner(nn.Module, ABC):
    """A meta-RL method: its parameters are meta-learned, ``test_inner_steps`` adaptation steps are taken at test."""

    name: ClassVar[str]
    test_inner_steps: int

    @abstractmethod
    def collect(
        self, tasks: Tensor, params: list[Params], generator: torch.Generator | None = None, testing: bool = False
    ) -> Episodes:
        """Episodes of each of ``tasks [n, task_dim]``, task ``i`` acting with ``params[i]``; the policy's noise is
        drawn from ``generator`` (torch's global one if ``None``); ``testing``: as many as meta-testing uses."""

    @abstractmethod
    def adapt(
        self, tasks: Tensor, steps: int | None = None, generator: torch.Generator | None = None
    ) -> tuple[list[Params], Trajectories]:
        """Adapt to each task by ``steps`` (default ``test_inner_steps``) test-time adaptation steps, each on fresh
        episodes of the policy adapted so far: the adapted parameters (detached) and each step's trajectories."""

    @abstractmethod
    def outer_step(self, batch: RLTaskBatch) -> tuple[float, dict[str, float]]:
        """One meta-update on ``batch``, applied to the parameters here (no optimizer, no ``.grad``): its outer loss
        and metrics."""

    def adaptation_returns(self, tasks: Tensor, steps: int) -> Tensor:
        """Average return ``[n, steps + 1]`` of each task's policy before and after each adaptation step.

        The rollouts' randomness is fixed by the tasks, so methods compared on the same tasks see the same noise.
        """
        return torch.stack([episodes.returns() for episodes in self.adaptation_episodes(tasks, steps)], dim=1)

    def adaptation_episodes(self, tasks: Tensor, steps: int) -> list[Episodes]:
        """The episodes ``adaptation_returns`` averages: before and after each adaptation step."""
        generator = torch.Generator().manual_seed(seed_of(tasks))
        adapted, trajectories = self.adapt(tasks, steps, generator)
        final = self.collect(tasks, adapted, generator, testing=True)
        return [episodes for episodes, _ in trajectories] + [final]

    def evaluate(self, batch: RLTaskBatch, steps: int | None = None) -> Tensor:
        """Each task's average return after ``steps`` (default ``test_inner_steps``) adaptation steps: ``[n]``."""
        return self.adaptation_returns(batch.tasks, self.test_inner_steps if steps is None else steps)[:, -1]


def seed_of(tasks: Tensor) -> int:
    """A seed fixed by the tasks themselves, so every method is evaluated on the same rollouts' noise."""
    return int.from_bytes(hashlib.sha256(tasks.to(torch.float64).numpy().tobytes()).digest()[:4], "little")
