"""Long training runs on the real data (``-m slow``): the methods learn what the papers say."""

from __future__ import annotations

from pathlib import Path

import pytest

import fastadapt as fa

pytestmark = pytest.mark.slow


def _omniglot(
    shared_data: Path, cache: Path, split: str, ways: int, shots: int, queries: int, seed: int
) -> fa.FewShotTasks:
    dataset = fa.datasets.Omniglot(shared_data, split=split, rotations=True, cache_dir=cache)
    return fa.FewShotTasks(dataset, ways, shots, queries, seed=seed)


def test_protonet_omniglot_5w1s_after_1000_episodes(shared_data: Path, omniglot_cache: Path) -> None:
    learner = fa.ProtoNet(fa.nn.Conv4())
    train = _omniglot(shared_data, omniglot_cache, "train", 60, 1, 5, seed=0)
    fa.meta_train(learner, train, steps=1000, meta_batch=1, progress=False)
    result = fa.meta_test(learner, _omniglot(shared_data, omniglot_cache, "test", 5, 1, 15, seed=2), episodes=600)
    assert result.mean - result.ci95 > 0.95, str(result)


def test_maml_omniglot_5w1s_after_500_updates(shared_data: Path, omniglot_cache: Path) -> None:
    learner = fa.MAML(fa.nn.Conv4(1, 5, pool="stride"), inner_lr=0.4, inner_steps=1, test_inner_steps=3)
    train = _omniglot(shared_data, omniglot_cache, "train", 5, 1, 5, seed=0)
    fa.meta_train(learner, train, steps=500, meta_batch=32, progress=False)
    result = fa.meta_test(learner, _omniglot(shared_data, omniglot_cache, "test", 5, 1, 15, seed=2), episodes=600)
    assert result.mean - result.ci95 > 0.85, str(result)


def test_maml_sinusoid_beats_the_unadapted_model() -> None:
    learner = fa.MAML(fa.nn.MLP(1, 1, hidden=(40, 40)), inner_lr=0.01, inner_steps=1, test_inner_steps=10, loss="mse")
    fa.meta_train(learner, fa.SinusoidTasks(shots=10, queries=10, seed=0), steps=3000, meta_batch=25, progress=False)
    test = fa.SinusoidTasks(shots=10, queries=100, seed=1)
    before = fa.meta_test(learner, test, episodes=600, inner_steps=0)
    after = fa.meta_test(learner, test, episodes=600, inner_steps=10)
    assert after.mean + after.ci95 < 0.5 * (before.mean - before.ci95), (str(before), str(after))
