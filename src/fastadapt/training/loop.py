"""The meta-training loop: sample, meta_backward, average, check, step, schedule; then log, validate, checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fastadapt.algorithms.base import MetaLearner
from fastadapt.distributed import World
from fastadapt.evaluate import meta_test
from fastadapt.tasks import TaskDistribution
from fastadapt.training.averaging import average_over_processes
from fastadapt.training.checkpoints import Checkpoints, Standing, TrainingState
from fastadapt.training.clock import Clock
from fastadapt.training.divergence import DivergencePolicy
from fastadapt.training.metrics import MetricWindow, train_record
from fastadapt.training.progress import ProgressBar
from fastadapt.training.settings import TrainConfig
from fastadapt.training.signals import StopRequest, TrainingInterrupted
from fastadapt.training.validation import Best, validation_record


@dataclass
class TrainResult:
    """What a meta-training run ended with."""

    steps: int
    best_step: int | None
    best_validation: dict[str, Any] | None
    elapsed_s: float
    run_dir: Path | None
    last_metrics: dict[str, float] = field(default_factory=dict)


class Trainer:
    """One meta-training run of ``learner`` (whose optimizer, schedule and sampler ``state`` holds), from where
    the run stands to ``settings.steps`` meta-updates; rank 0 of the ``world`` validates, logs and checkpoints."""

    def __init__(
        self, learner: MetaLearner, state: TrainingState, settings: TrainConfig, checkpoints: Checkpoints,
        standing: Standing, val_tasks: TaskDistribution | None, world: World,
    ) -> None:
        self.learner, self.state, self.settings = learner, state, settings
        self.checkpoints, self.folder = checkpoints, checkpoints.folder
        self.val_tasks, self.world = val_tasks, world
        self.device = next(learner.parameters()).device
        self.step = standing.step
        self.best = Best(standing.best, checkpoints.best_model() if standing.best is not None else None)
        self.window = MetricWindow()
        self.divergence = DivergencePolicy(skip=settings.skip_nonfinite)
        self.stop = StopRequest()
        self.bar = ProgressBar(learner.name, settings.steps, standing.step, settings.progress and world.is_main)
        self.clock = Clock(standing.elapsed_s, settings.budget_s)

    def run(self) -> TrainResult:
        """Train to the last step (or the time budget), then load the best state back if asked to."""
        self.learner.train()
        with self.stop.installed():
            try:
                self._train()
            finally:
                self.bar.close()
                self.folder.close()
        self.clock.lap()
        if self.settings.restore_best and self.best.state is not None:
            self.learner.load_state_dict(self.best.state)
        return TrainResult(
            self.step, self.best.step, self.best.record, self.clock.elapsed_s, self.folder.path, self.window.means
        )

    def _train(self) -> None:
        final = self.step >= self.settings.steps or self._out_of_time()  # a resumed run may have nothing left to do
        while not final:
            self._update()
            self.step += 1
            final = self.step == self.settings.steps or self._out_of_time()
            self._record(final)
            if not final:
                self._honour_stop()

    def _update(self) -> None:
        """One meta-update: sample a meta-batch, meta_backward, average over the processes, check, step, schedule."""
        self.learner.set_step(self.step)
        batch = self.world.shard(self.state.sampler.sample(self.settings.meta_batch)).to(self.device)
        self.state.optimizer.zero_grad(set_to_none=True)
        loss, metrics = self.learner.meta_backward(batch)
        loss, metrics = average_over_processes(self.learner, loss, metrics, self.world)
        if self.divergence.admit(loss, self.learner, self.step + 1, self.folder.file("last.pt")):
            if self.settings.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.learner.parameters(), self.settings.grad_clip)
            self.window.add(metrics)
        self.state.optimizer.step()  # a skipped batch left no gradients: this step changes nothing
        self.state.scheduler.step()

    def _record(self, final: bool) -> None:
        """Log, validate and checkpoint when their intervals come, and all three at the end."""
        done, settings = self.step, self.settings
        if done % settings.log_every == 0 or final:
            self._log()
        self.bar.advance()
        if done % settings.val_every == 0 or final:
            self._validate()
        if done % settings.checkpoint_interval == 0 or done % settings.val_every == 0 or final:
            self.clock.lap()
            self._save("last.pt")

    def _log(self) -> None:
        """A train record: the means of the metrics since the last one, the learning rate and the training time."""
        means = self.window.close()
        lr = self.state.scheduler.get_last_lr()[0]
        self.folder.log(train_record(self.step, means, lr, self.clock.lap(), self.divergence.skipped))
        self.bar.show(means)

    def _validate(self) -> None:
        """Meta-test on the validation tasks (not counted as training time); a new best writes ``best.pt``."""
        with self.clock.paused():
            if self.val_tasks is None or not self.world.is_main:
                return
            result = meta_test(self.learner, self.val_tasks, episodes=self.settings.val_episodes)
            self.folder.log(validation_record(result, self.step))
            if self.best.consider(result, self.step, self.learner):
                self._save("best.pt")
            self.bar.show(self.window.means, f"val {result}")

    def _save(self, name: str) -> None:
        """Bring ``metrics.csv`` up to date and write checkpoint ``name`` of the run as it stands."""
        self.folder.write_csv()
        self.checkpoints.save(name, Standing(self.step, self.clock.elapsed_s, self.best.record))

    def _honour_stop(self) -> None:
        """After a signal to any process: save ``last.pt`` and stop with ``TrainingInterrupted``."""
        if not self.world.any(self.stop.requested, self.device):
            return
        self.clock.lap()
        self._save("last.pt")
        if self.world.is_main:
            where = f"; continue with --resume {self.folder.path}" if self.folder.path is not None else ""
            saved = self.folder.file("last.pt")
            self.bar.write(f"stopped by signal after step {self.step}, state saved to {saved}{where}")
        raise TrainingInterrupted(f"stopped after step {self.step}")

    def _out_of_time(self) -> bool:
        """Whether the time budget is spent, on any process (so that all stop at the same step)."""
        return self.clock.budget_s is not None and self.world.any(self.clock.out_of_time(), self.device)
