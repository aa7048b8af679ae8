"""Meta-testing: adapt to each of a fixed sequence of held-out tasks, report mean and 95% CI."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from tqdm import tqdm

from fastadapt.algorithms.base import MetaLearner
from fastadapt.tasks import TaskDistribution


HIGHER_IS_BETTER = frozenset({"accuracy", "return"})  # every other metric (mse, loss) is an error


def higher_is_better(metric: str) -> bool:
    """Whether a larger ``metric`` is a better result (accuracy, return) or a worse one (mse, any loss): the one rule
    that picks the best checkpoint and words the reports."""
    return metric in HIGHER_IS_BETTER


def mean_ci95(values: list[float]) -> tuple[float, float, float]:
    """Mean, 95% confidence half-width ``1.96 * s / sqrt(n)`` and sample standard deviation ``s``."""
    n = len(values)
    if n == 0:
        raise ValueError("cannot summarize zero episodes")
    mean = sum(values) / n
    if n == 1:
        return mean, float("nan"), float("nan")
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, 1.96 * std / math.sqrt(n), std


@dataclass
class EvalResult:
    """The outcome of meta-testing: ``mean ± ci95`` of ``metric`` over ``episodes`` tasks."""

    metric: str
    mean: float
    ci95: float
    std: float
    episodes: int
    loss: float
    loss_ci95: float
    values: list[float] = field(repr=False, default_factory=list)

    def __str__(self) -> str:
        if self.metric == "accuracy":
            return f"accuracy {100 * self.mean:.2f}% ± {100 * self.ci95:.2f}% (95% CI, {self.episodes} episodes)"
        if self.metric == "return":
            return f"return {self.mean:.2f} ± {self.ci95:.2f} (95% CI, {self.episodes} tasks)"
        return f"{self.metric} {self.mean:.4f} ± {self.ci95:.4f} (95% CI, {self.episodes} episodes)"

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary: the metric under its own name, ``ci95``, ``episodes`` and the loss."""
        summary = {k: v for k, v in asdict(self).items() if k not in ("values", "mean")}
        summary[self.metric] = self.mean
        summary.setdefault("accuracy", None)
        return summary


def meta_test(
    learner: MetaLearner,
    tasks: TaskDistribution,
    episodes: int = 600,
    inner_steps: int | None = None,
    batch_size: int = 32,
    seed: int | None = None,
    progress: bool = False,
    statistics: str = "query",
) -> EvalResult:
    """Adapt ``learner`` to ``episodes`` fixed tasks of ``tasks`` and score it on their query sets.

    The episodes are replayed from ``seed`` (default: the distribution's own seed), so repeated
    calls and different methods see the same tasks. ``inner_steps`` overrides the number of
    adaptation steps of gradient-based learners. Classification reports accuracy; regression the
    query loss (e.g. MSE); reinforcement learning the average return (``MAMLRL``).
    ``statistics="support"`` tests non-transductively: batch norm normalizes the queries with the
    support set's statistics, so each query is classified independently of the others.
    """
    device = next(learner.parameters()).device
    was_training = learner.training
    learner.eval()
    losses: list[float] = []
    accuracies: list[float] = []
    returns: list[float] = []
    try:
        with tqdm(total=episodes, desc="meta-test", unit="task", disable=None if progress else True, leave=False) as bar:
            for batch in tasks.episodes(episodes, batch_size=batch_size, seed=seed):
                scores = learner.evaluate(batch.to(device), steps=inner_steps, statistics=statistics)
                losses += scores["loss"].tolist()
                if "accuracy" in scores:
                    accuracies += scores["accuracy"].tolist()
                if "return" in scores:
                    returns += scores["return"].tolist()
                bar.update(len(batch))
    finally:
        learner.train(was_training)
    loss_mean, loss_ci, loss_std = mean_ci95(losses)
    if accuracies:
        mean, ci, std = mean_ci95(accuracies)
        return EvalResult("accuracy", mean, ci, std, episodes, loss_mean, loss_ci, accuracies)
    if returns:
        mean, ci, std = mean_ci95(returns)
        return EvalResult("return", mean, ci, std, episodes, loss_mean, loss_ci, returns)
    name = "mse" if learner.loss_fn is torch.nn.functional.mse_loss else "loss"
    return EvalResult(name, loss_mean, loss_ci, loss_std, episodes, loss_mean, loss_ci, losses)
