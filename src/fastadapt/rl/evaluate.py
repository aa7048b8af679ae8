"""The MAML paper's RL evaluation: average return on held-out tasks before adaptation and after each
of a few policy-gradient steps, with 95% confidence intervals over the tasks."""

from __future__ import annotations

import torch
from torch import Tensor

from fastadapt.evaluate import EvalResult, mean_ci95
from fastadapt.rl.learner import RLMetaLearner
from fastadapt.rl.tasks import RLTasks


def adaptation_curve(
    learner: RLMetaLearner, tasks: RLTasks, episodes: int, steps: int = 3, seed: int | None = None, batch_size: int = 32
) -> list[EvalResult]:
    """One ``EvalResult`` (metric ``return``) per number of adaptation steps ``0..steps``, over
    ``episodes`` fixed tasks of ``tasks`` (replayed from ``seed``), in batches of ``batch_size`` as
    ``meta_test`` draws them (so its figure equals this curve's last point); the rollout noise of a
    batch is fixed by its tasks, so two learners are compared on the same draws."""
    rows = [learner.adaptation_returns(batch.tasks, steps) for batch in tasks.episodes(episodes, batch_size, seed)]
    return returns_curve(torch.cat(rows))


def returns_curve(returns: Tensor) -> list[EvalResult]:
    """One ``EvalResult`` (metric ``return``) per column of ``returns [tasks, steps + 1]``, over the tasks."""
    curve = []
    for column in returns.T.tolist():
        mean, ci, std = mean_ci95(column)
        curve.append(EvalResult("return", mean, ci, std, len(column), -mean, ci, column))
    return curve


def paired_gain(before: EvalResult, after: EvalResult) -> tuple[float, float]:
    """Mean and 95% CI of the per-task improvement ``after - before`` on the same tasks: much tighter
    than comparing the two intervals, since tasks differ far more than adaptation changes them."""
    if len(before.values) != len(after.values):
        raise ValueError("a paired gain needs the same tasks on both sides")
    mean, ci, _ = mean_ci95([a - b for a, b in zip(after.values, before.values, strict=True)])
    return mean, ci
