"""Meta-testing: adapt to each of a fixed sequence of held-out tasks, report mean and 95% CI."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor
from tqdm import tqdm

from fastadapt.algorithms.base import MetaLearner, batch_ways
from fastadapt.errors import ConfigError
from fastadapt.nn.population import Moments, StatisticsRecorder
from fastadapt.rl.learner import RLMetaLearner
from fastadapt.rl.tasks import RLTasks
from fastadapt.tasks import TaskBatch, TaskDistribution

POPULATION_EPISODES = 100  # training tasks whose query batches fix the population statistics
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
    learner: MetaLearner | RLMetaLearner,
    tasks: TaskDistribution | RLTasks,
    episodes: int = 600,
    inner_steps: int | None = None,
    batch_size: int = 32,
    seed: int | None = None,
    progress: bool = False,
    statistics: str = "query",
    population: TaskDistribution | RLTasks | Moments | None = None,
) -> EvalResult:
    """Adapt ``learner`` to ``episodes`` fixed tasks of ``tasks`` and score it on their query sets.

    The episodes are replayed from ``seed`` (default: the distribution's own seed), so repeated
    calls and different methods see the same tasks. ``inner_steps`` overrides the number of
    adaptation steps of gradient-based learners. Classification reports accuracy; regression the
    query loss (e.g. MSE); reinforcement learning (an ``RLMetaLearner`` on ``RLTasks``) the average
    return after adaptation. ``statistics`` says which batch-norm statistics normalize the queries:
    their own batch's (``"query"``, transductive), the support set's (``"support"``) or the support set's
    plus each query on its own (``"support_and_query"``, Reptile's non-transductive protocol); with the last
    two each query is classified independently of the others. ``"population"`` normalizes support and queries with
    fixed moments recorded first on ``POPULATION_EPISODES`` tasks of ``population`` (the training tasks), or with
    ``population`` itself where it holds moments already recorded (``population_moments``): the non-transductive
    test of code that tests with batch norm in eval mode.
    """
    was_training = learner.training
    learner.eval()
    scores: dict[str, list[float]] = {}
    try:
        moments = _fixed_moments(learner, population, inner_steps, statistics)
        with tqdm(
            total=episodes, desc="meta-test", unit="task", disable=None if progress else True, leave=False
        ) as bar:
            for batch_scores in _scores(learner, tasks, episodes, inner_steps, batch_size, seed, statistics, moments):
                for key, values in batch_scores.items():
                    scores.setdefault(key, []).extend(values.tolist())
                bar.update(len(batch_scores["loss"]))
    finally:
        learner.train(was_training)
    return _summary(scores, episodes, learner)


def _scores(
    learner: MetaLearner | RLMetaLearner, tasks: TaskDistribution | RLTasks, episodes: int, inner_steps: int | None,
    batch_size: int, seed: int | None, statistics: str, moments: Moments | None,
) -> Iterator[dict[str, Tensor]]:
    """The per-task scores of each batch of fixed episodes: the query ``loss`` (and ``accuracy``) of a supervised
    learner, the ``return`` of a reinforcement learner (and its negative as the ``loss``)."""
    if isinstance(learner, RLMetaLearner) and isinstance(tasks, RLTasks):
        for rl_batch in tasks.episodes(episodes, batch_size, seed):
            returns = learner.evaluate(rl_batch, inner_steps)
            yield {"return": returns, "loss": -returns}
    elif isinstance(learner, MetaLearner) and isinstance(tasks, TaskDistribution):
        device = next(learner.parameters()).device
        for batch in tasks.episodes(episodes, batch_size=batch_size, seed=seed):
            yield learner.evaluate(batch.to(device), steps=inner_steps, statistics=statistics, population=moments)
    else:
        raise TypeError(
            f"{type(learner).__name__} cannot be tested on {type(tasks).__name__}: "
            "reinforcement learners are tested on RLTasks, the others on a TaskDistribution"
        )


def _fixed_moments(
    learner: MetaLearner | RLMetaLearner, population: TaskDistribution | RLTasks | Moments | None,
    inner_steps: int | None,
    statistics: str,
) -> Moments | None:
    """The recorded moments that ``statistics="population"`` tests with (``None`` for the other protocols), after
    refusing any batch-norm protocol but the default for a reinforcement learner."""
    if statistics == "query":
        return None
    if not isinstance(learner, MetaLearner):
        raise ConfigError(f"statistics={statistics!r} is a batch-norm protocol of few-shot learning, not of RL: "
                          "test a reinforcement learner with statistics='query'")
    if statistics != "population":
        return None
    return population if isinstance(population, dict) else recorded_population(learner, population, inner_steps)


def recorded_population(
    learner: MetaLearner, tasks: TaskDistribution | RLTasks | None, inner_steps: int | None = None
) -> Moments:
    """``population_moments`` over ``POPULATION_EPISODES`` fixed tasks of ``tasks`` (the training tasks)."""
    if not isinstance(tasks, TaskDistribution):
        raise ConfigError("statistics='population' records batch-norm statistics on training tasks: give "
                          "meta_test(..., population=the training TaskDistribution)")
    return population_moments(learner, tasks.episodes(POPULATION_EPISODES), inner_steps)


def population_moments(learner: MetaLearner, batches: Iterable[TaskBatch], inner_steps: int | None = None) -> Moments:
    """The batch moments of every batch-norm layer of ``learner``, averaged over the tasks of ``batches``: each adapted
    to as at test (eval mode), then its queries predicted, each batch normalized on its own statistics as in training.
    The statistics that ``statistics="population"`` tests with. Only the prediction is recorded: it is the pass every
    learner makes on the task's images with what it learned (a relation module sees query-class pairs in it)."""
    device = next(learner.parameters()).device
    recorder = StatisticsRecorder(learner)
    was_training = learner.training
    learner.eval()
    try:
        for batch in batches:
            batch = batch.to(device)
            ways = batch_ways(batch)
            for sx, sy, qx in zip(batch.support_x, batch.support_y, batch.query_x, strict=True):
                with torch.no_grad():
                    predictor = learner.adapt(sx, sy, steps=inner_steps, ways=ways)
                with recorder.recording():
                    predictor(qx)
    finally:
        learner.train(was_training)
    return recorder.moments()


def _summary(scores: dict[str, list[float]], episodes: int, learner: MetaLearner | RLMetaLearner) -> EvalResult:
    """The result of meta-testing: accuracy or return where measured, else the query loss (named ``mse``
    for regression by mean squared error)."""
    loss_mean, loss_ci, loss_std = mean_ci95(scores["loss"])
    for metric in ("accuracy", "return"):
        if metric in scores:
            mean, ci, std = mean_ci95(scores[metric])
            return EvalResult(metric, mean, ci, std, episodes, loss_mean, loss_ci, scores[metric])
    name = "mse" if isinstance(learner, MetaLearner) and learner.loss_fn is torch.nn.functional.mse_loss else "loss"
    return EvalResult(name, loss_mean, loss_ci, loss_std, episodes, loss_mean, loss_ci, scores["loss"])
