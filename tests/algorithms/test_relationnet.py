"""Relation networks: the pairing of query and class feature maps and the paper's loss."""

from __future__ import annotations

import pytest
import torch
from helpers import random_dataset

import fastadapt as fa
from fastadapt.algorithms.relationnet import relation_mse
from fastadapt.errors import ConfigError


def _learner() -> fa.RelationNet:
    return fa.RelationNet(fa.nn.Conv4(1, None, hidden=8, image_size=16, downsample_blocks=2, feature_maps=True))


def test_relation_loss_is_mse_against_one_hot_labels() -> None:
    scores = torch.tensor([[0.9, 0.2], [0.4, 0.5]])
    expected = ((0.9 - 1) ** 2 + 0.2**2 + 0.4**2 + (0.5 - 1) ** 2) / 4
    assert relation_mse(scores, torch.tensor([0, 1])).item() == pytest.approx(expected)


def test_each_query_is_paired_with_the_sum_of_each_class_feature_maps() -> None:
    learner = _learner()
    seen = []
    learner.relation.forward = lambda pairs: seen.append(pairs) or pairs.flatten(1).sum(1)  # type: ignore[method-assign]
    batch = fa.FewShotTasks(random_dataset(), ways=3, shots=2, queries=2).sample(1)
    task = batch[0]
    scores = learner.adapt(task.support_x, task.support_y)(task.query_x)
    pairs = seen[0].view(6, 3, 16, 4, 4)
    support, query = learner.encoder(task.support_x), learner.encoder(task.query_x)
    for c in range(3):
        torch.testing.assert_close(pairs[0, c, :8], support[task.support_y == c].sum(0))
    for i in range(6):
        torch.testing.assert_close(pairs[i, 1, 8:], query[i])
    assert scores.shape == (6, 3)


def test_scores_lie_in_the_unit_interval_and_training_reaches_every_parameter() -> None:
    learner = _learner()
    batch = fa.FewShotTasks(random_dataset(), ways=3, shots=1, queries=2).sample(2)
    loss, _ = learner.meta_loss(batch)
    loss.backward()
    assert all(p.grad is not None for p in learner.parameters())
    scores = learner.adapt(batch[0].support_x, batch[0].support_y)(batch[0].query_x)
    assert ((scores > 0) & (scores < 1)).all()
    torch.testing.assert_close(learner.probabilities(scores).sum(1), torch.ones(6))


def test_an_encoder_without_feature_maps_is_refused() -> None:
    with pytest.raises(ConfigError, match="feature_shape"):
        fa.RelationNet(torch.nn.Flatten())
    with pytest.raises(ConfigError, match="at least 4x4"):
        fa.RelationNet(fa.nn.Conv4(1, None, hidden=8, image_size=16, feature_maps=True))
