"""Meta-testing: the confidence interval, fixed episodes, regression metric."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import random_dataset

import fastadapt as fa
from fastadapt.evaluate import mean_ci95, meta_test


def test_ci95_by_hand() -> None:
    mean, ci, std = mean_ci95([0.5, 0.7, 0.9, 0.7])
    assert mean == pytest.approx(0.7)
    assert std == pytest.approx(math.sqrt((0.04 + 0 + 0.04 + 0) / 3))
    assert ci == pytest.approx(1.96 * std / 2)


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
        direct = [torch.nn.functional.mse_loss(learner.model(b.query_x), b.query_y).item() for b in tasks.episodes(20, 1)]
    assert zero.values == pytest.approx(direct, rel=1e-5)
