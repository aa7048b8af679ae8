"""The meta-training loop: one meta-update (``fastadapt.training.update``) after another; then log, validate and
checkpoint when their intervals come."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastadapt.distributed import World
from fastadapt.training.checkpoints import Checkpoints, Standing, TrainingState
from fastadapt.training.clock import Clock
from fastadapt.training.divergence import DivergencePolicy
from fastadapt.training.metrics import MetricWindow, train_record
from fastadapt.training.progress import ProgressBar
from fastadapt.training.settings import TrainConfig
from fastadapt.training.signals import StopRequest, TrainingInterrupted
from fastadapt.training.update import Update
from fastadapt.training.validation import Best, Ranking, validation_record


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
    """One meta-training run of the learner that ``state`` holds (with its sampler and any optimizer and schedule),
    made of ``update``s, from where the run stands to ``settings.steps`` meta-updates; rank 0 of the ``world``
    validates, logs and checkpoints."""

    def __init__(
        self, update: Update, state: TrainingState, settings: TrainConfig, checkpoints: Checkpoints,
        standing: Standing, world: World,
    ) -> None:
        self.update, self.learner, self.settings = update, state.model, settings
        self.checkpoints, self.folder, self.world = checkpoints, checkpoints.folder, world
        self.device = next(state.model.parameters()).device
        self.step = standing.step
        best_state = checkpoints.best_model() if standing.best is not None else None
        self.best = Best(standing.best, best_state, settings.select)
        self.ranking = Ranking(settings.keep_best, list(standing.top), settings.select)
        self.window = MetricWindow()
        self.divergence = DivergencePolicy(skip=settings.skip_nonfinite)
        self.stop = StopRequest()
        self.bar = ProgressBar(state.algorithm, settings.steps, standing.step, settings.progress and world.is_main)
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
        final = self.step >= self.settings.steps or self._out_of_time() or self._patience_spent()  # resumed: done?
        while not final:
            metrics = self.update(self.step, self.divergence, self.folder.file("last.pt"))
            if metrics is not None:
                self.window.add(metrics)
            self.step += 1
            final = self.step == self.settings.steps or self._out_of_time()
            self._record(final)
            if not final and self._patience_spent():
                break
            if not final:
                self._honour_stop()

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
        self.folder.log(train_record(self.step, means, self.update.lr(), self.clock.lap(), self.divergence.skipped))
        self.bar.show(means)

    def _validate(self) -> None:
        """Meta-test on the validation tasks (not counted as training time); a new best writes ``best.pt``."""
        with self.clock.paused():
            result = self.update.validate(self.settings.val_episodes) if self.world.is_main else None
            if result is None:
                return
            self.folder.log(validation_record(result, self.step))
            if self.settings.keep_best > 1 and self.ranking.offer(result, self.step):
                self.checkpoints.save_top(self.step, self._standing())
            if self.best.consider(result, self.step, self.learner):
                self._save("best.pt")
            self.bar.show(self.window.means, f"val {result}")

    def _standing(self) -> Standing:
        return Standing(self.step, self.clock.elapsed_s, self.best.record, tuple(self.ranking.entries))

    def _save(self, name: str) -> None:
        """Bring ``metrics.csv`` up to date and write checkpoint ``name`` of the run as it stands (after ``last.pt``,
        the checkpoints of validations that left the best few go)."""
        self.folder.write_csv()
        self.checkpoints.save(name, self._standing())
        if name == "last.pt":
            self.checkpoints.prune_top(self.ranking.steps)

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

    def _patience_spent(self) -> bool:
        """Whether ``patience`` meta-updates have passed since the best validation, or since the start while no
        validation was a number (checked where validation ran)."""
        patience, best = self.settings.patience, self.best.step
        if patience is None or self.step % self.settings.val_every:
            return False
        spent = self.world.is_main and self.step - (best or 0) >= patience  # rank 0 validates: it decides for all
        return self.world.any(spent, self.device)

    def _out_of_time(self) -> bool:
        """Whether the time budget is spent, on any process (so that all stop at the same step)."""
        return self.clock.budget_s is not None and self.world.any(self.clock.out_of_time(), self.device)
