"""The one meta-update of the training loop and the validation that goes with it, which differ by the kind of
learner: a supervised ``MetaLearner`` (its meta-gradient, applied by an optimizer) or an ``RLMetaLearner``
(which makes its own outer step, e.g. TRPO's). The loop around them is the same."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from fastadapt.algorithms.base import MetaLearner
from fastadapt.distributed import World
from fastadapt.evaluate import EvalResult, meta_test
from fastadapt.rl.learner import RLMetaLearner
from fastadapt.rl.tasks import RLTasks
from fastadapt.tasks import TaskDistribution
from fastadapt.training.averaging import average_over_processes, average_parameters
from fastadapt.training.divergence import DivergencePolicy


class Update(Protocol):
    """How the loop updates a learner and validates it."""

    def __call__(self, done: int, divergence: DivergencePolicy, last: Path | None) -> dict[str, float] | None:
        """The meta-update after ``done`` ones, judged by ``divergence`` (``last``: the checkpoint an error points
        to): its metrics, or ``None`` when the policy skipped it."""
        ...

    def lr(self) -> float | None:
        """The learning rate of the next update, for the log (``None``: the learner has none)."""
        ...

    def validate(self, episodes: int) -> EvalResult | None:
        """Meta-test on ``episodes`` fixed validation tasks (``None``: the run has none)."""
        ...


@dataclass
class SupervisedUpdate:
    """The gradient of the meta-objective on a meta-batch of ``meta_batch`` tasks, averaged over the processes,
    checked, clipped to ``grad_clip`` (each of the learner's ``clip_groups``); then the optimizer's step and the
    schedule's."""

    learner: MetaLearner
    tasks: TaskDistribution
    val_tasks: TaskDistribution | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    meta_batch: int
    grad_clip: float | None
    world: World

    def __call__(self, done: int, divergence: DivergencePolicy, last: Path | None) -> dict[str, float] | None:
        learner = self.learner
        learner.set_step(done)
        device = next(learner.parameters()).device
        batch = self.world.shard(self.tasks.sample(self.meta_batch)).to(device)
        self.optimizer.zero_grad(set_to_none=True)
        loss, metrics = learner.meta_backward(batch)
        loss, metrics = average_over_processes(learner, loss, metrics, self.world)
        admitted = divergence.admit(loss, learner, done + 1, last)
        if admitted and self.grad_clip is not None:
            for group in learner.clip_groups():
                torch.nn.utils.clip_grad_norm_(group, self.grad_clip)
        self.optimizer.step()  # a skipped batch left no gradients: this step changes nothing
        self.scheduler.step()
        return metrics if admitted else None

    def lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def validate(self, episodes: int) -> EvalResult | None:
        return None if self.val_tasks is None else meta_test(self.learner, self.val_tasks, episodes=episodes)


@dataclass
class RLUpdate:
    """The learner's own outer step on its slice of a meta-batch of ``meta_batch`` tasks (no optimizer, no
    gradients), the updated parameters averaged over the processes and the outer loss checked: an update the
    divergence policy skips is undone."""

    learner: RLMetaLearner
    tasks: RLTasks
    val_tasks: RLTasks | None
    meta_batch: int
    world: World

    def __call__(self, done: int, divergence: DivergencePolicy, last: Path | None) -> dict[str, float] | None:
        batch = self.tasks.sample(self.meta_batch).shard(self.world.rank, self.world.size)
        before = [p.detach().clone() for p in self.learner.parameters()]
        loss, metrics = self.learner.outer_step(batch)
        loss, metrics = average_parameters(self.learner, loss, metrics, self.world)
        if divergence.passes(loss, [], done + 1, last):
            return metrics
        with torch.no_grad():
            for p, value in zip(self.learner.parameters(), before, strict=True):
                p.copy_(value)
        return None

    def lr(self) -> None:
        return None

    def validate(self, episodes: int) -> EvalResult | None:
        return None if self.val_tasks is None else meta_test(self.learner, self.val_tasks, episodes=episodes)
