"""The MAML paper's RL evaluation: average return on held-out tasks before adaptation and after each
of a few policy-gradient steps, with 95% confidence intervals over the tasks."""

from __future__ import annotations

import torch

from fastadapt.evaluate import EvalResult, mean_ci95
from fastadapt.rl.mamlrl import MAMLRL, RLTasks


def adaptation_curve(learner: MAMLRL, tasks: RLTasks, episodes: int, steps: int = 3, seed: int | None = None, batch_size: int = 20) -> list[EvalResult]:
    """One ``EvalResult`` (metric ``return``) per number of adaptation steps ``0..steps``, over
    ``episodes`` fixed tasks of ``tasks`` (replayed from ``seed``); every task's rollouts use noise
    fixed by the task, so two learners are compared on the same draws."""
    rows = [learner.adaptation_returns(batch.tasks, steps) for batch in tasks.episodes(episodes, batch_size, seed)]
    values = torch.cat(rows)
    curve = []
    for column in values.T.tolist():
        mean, ci, std = mean_ci95(column)
        curve.append(EvalResult("return", mean, ci, std, episodes, -mean, ci, column))
    return curve
