"""Meta-testing: the confidence interval, fixed episodes, regression metric."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import raises_misuse, random_dataset

import fastadapt as fa
from fastadapt.errors import ConfigError
from fastadapt.evaluate import POPULATION_EPISODES, EvalResult, higher_is_better, mean_ci95, meta_test
from fastadapt.reproduce.registry import METRICS
from fastadapt.reproduce.report import sense
from fastadapt.rl.evaluate import paired_gain


def test_ci95_by_hand() -> None:
    mean, ci, std = mean_ci95([0.5, 0.7, 0.9, 0.7])
    assert mean == pytest.approx(0.7)
    assert std == pytest.approx(math.sqrt((0.04 + 0 + 0.04 + 0) / 3))
    assert ci == pytest.approx(1.96 * std / 2)
    with raises_misuse("zero episodes"):
        mean_ci95([])


def test_a_paired_gain_on_different_tasks_is_a_callers_mistake() -> None:
    """The CLI compares a baseline on the run's own episodes, so unequal lengths come from Python code alone."""
    before = EvalResult("return", -2.0, 0.1, 0.1, 2, 2.0, 0.1, [-2.0, -2.0])
    after = EvalResult("return", -1.0, 0.1, 0.1, 2, 1.0, 0.1, [-1.5, -0.5])
    assert paired_gain(before, after)[0] == pytest.approx(1.0)
    with raises_misuse("same tasks on both sides"):
        paired_gain(before, EvalResult("return", -1.0, 0.1, 0.1, 1, 1.0, 0.1, [-1.0]))


def test_accuracy_and_return_grow_better_and_errors_shrink_better() -> None:
    assert [higher_is_better(m) for m in ("accuracy", "return", "mse", "loss")] == [True, True, False, False]
    assert {m: sense(m) for m in METRICS} == {
        "accuracy": "higher is better", "mse": "lower is better", "return": "higher is better"
    }


def test_meta_test_replays_the_same_episodes() -> None:
    learner = fa.ProtoNet(fa.nn.Conv4(1, hidden=8, image_size=16))
    tasks = fa.FewShotTasks(random_dataset(size=16), 4, 1, 3, seed=9)
    first = meta_test(learner, tasks, episodes=10, batch_size=4)
    tasks.sample(5)
    second = meta_test(learner, tasks, episodes=10, batch_size=3)
    assert first.values == pytest.approx(second.values) and first.episodes == 10 == len(first.values)
    summary = first.to_dict()
    assert {"accuracy", "ci95", "episodes", "loss"} <= set(summary) and summary["accuracy"] == first.mean
    assert "accuracy" in str(first) and "95% CI" in str(first)
    assert learner.training  # the learner's mode is restored


def test_meta_test_uses_the_requested_adaptation_steps() -> None:
    learner = fa.MAML(fa.nn.MLP(1, 1), inner_lr=0.01, inner_steps=1, loss="mse")
    tasks = fa.SinusoidTasks(shots=10, queries=20, seed=0)
    zero = meta_test(learner, tasks, episodes=20, inner_steps=0)
    many = meta_test(learner, tasks, episodes=20, inner_steps=20)
    assert zero.metric == "mse" and zero.to_dict()["accuracy"] is None
    assert many.mean < zero.mean
    with torch.no_grad():
        direct = [
            torch.nn.functional.mse_loss(learner.model(b.query_x), b.query_y).item() for b in tasks.episodes(20, 1)
        ]
    assert zero.values == pytest.approx(direct, rel=1e-5)


def test_population_statistics_are_recorded_on_the_given_training_tasks() -> None:
    """Moments from 100 tasks of ``population``: the same numbers from the same tasks, others from other tasks."""

    torch.manual_seed(0)
    learner = fa.ProtoNet(fa.nn.Conv4(1, hidden=8, image_size=16))
    tests = fa.FewShotTasks(random_dataset(size=16), 4, 1, 3, seed=9)
    population = fa.FewShotTasks(random_dataset(size=16, seed=1), 4, 1, 3, seed=3)
    first, again = (meta_test(learner, tests, episodes=6, statistics="population", population=population)
                    for _ in range(2))
    moments = fa.population_moments(learner, population.episodes(POPULATION_EPISODES))
    by_hand = learner.evaluate(next(tests.episodes(6)), statistics="population", population=moments)
    assert first.values == again.values == pytest.approx(by_hand["accuracy"].tolist())
    assert first.loss == pytest.approx(by_hand["loss"].mean().item())
    other = fa.FewShotTasks(random_dataset(size=16, seed=2), 4, 1, 3, seed=4)
    assert meta_test(learner, tests, episodes=6, statistics="population", population=other).loss != first.loss
    with pytest.raises(ConfigError, match="records batch-norm statistics on training tasks"):
        meta_test(learner, tests, episodes=6, statistics="population")


@pytest.mark.parametrize("statistics", ["support", "support_and_query", "population"])
def test_a_reinforcement_learner_is_refused_a_batch_norm_protocol(
    statistics: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused with the fix before any test task is drawn (nor training tasks recorded on)."""
    learner = fa.rl.MAMLRL(fa.rl.GaussianPolicy(2, 2, hidden=(4,)), fa.rl.Navigation2D(), trajectories=2, horizon=3)
    tasks = fa.rl.RLTasks(fa.rl.Navigation2D(), seed=0)

    def drawn(*args: object, **kwargs: object) -> None:
        raise AssertionError("a task was drawn before the refusal")

    monkeypatch.setattr(fa.rl.RLTasks, "episodes", drawn)
    with pytest.raises(ConfigError, match=f"statistics='{statistics}' is a batch-norm protocol of few-shot learning, "
                                          "not of RL: test a reinforcement learner with statistics='query'"):
        meta_test(learner, tasks, episodes=1, statistics=statistics, population=tasks)


def test_population_moments_are_recorded_as_the_model_is_tested() -> None:
    """In eval mode (MAML adapts with its test steps there), whatever mode the learner was in, which is kept."""
    torch.manual_seed(0)
    learner = fa.MAML(fa.nn.Conv4(1, 4, hidden=8, image_size=16), inner_lr=0.4, inner_steps=1, test_inner_steps=3)
    batches = list(fa.FewShotTasks(random_dataset(size=16), 4, 1, 3, seed=3).episodes(4))
    learner.train()
    in_training = fa.population_moments(learner, batches)
    assert learner.training
    learner.eval()
    in_eval = fa.population_moments(learner, batches)
    assert not learner.training
    for name, (mean, var) in in_eval.items():
        torch.testing.assert_close(in_training[name][0], mean)
        torch.testing.assert_close(in_training[name][1], var)
    one_step = fa.population_moments(learner, batches, inner_steps=1)
    assert not all(torch.allclose(one_step[name][0], mean) for name, (mean, _) in in_eval.items())

