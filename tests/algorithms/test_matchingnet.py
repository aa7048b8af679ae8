"""Matching networks on hand-computable embeddings."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import random_dataset

import fastadapt as fa
from fastadapt.errors import ConfigError


def test_predictions_are_the_class_sums_of_cosine_attention() -> None:
    learner = fa.MatchingNet(torch.nn.Flatten())
    support_x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    support_y = torch.tensor([0, 1, 1])
    query_x = torch.tensor([[1.0, 1.0]])
    log_probs = learner.adapt(support_x, support_y)(query_x)
    # Cosines to the three support examples are all 1/sqrt(2): uniform attention, class 1 holds two.
    torch.testing.assert_close(log_probs.exp(), torch.tensor([[1 / 3, 2 / 3]]))
    query_x = torch.tensor([[1.0, 0.0]])  # cosines 1, 0, 0
    e = math.e
    torch.testing.assert_close(
        learner.adapt(support_x, support_y)(query_x).exp(), torch.tensor([[e / (e + 2), 2 / (e + 2)]])
    )


def test_the_loss_is_the_negative_log_probability_of_the_true_class() -> None:
    learner = fa.MatchingNet(torch.nn.Flatten())
    batch = fa.FewShotTasks(random_dataset(size=4), ways=3, shots=2, queries=2).sample(2)
    expected = []
    for task in batch:
        s, q = task.support_x.flatten(1), task.query_x.flatten(1)
        attention = (torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(s, dim=1).T).softmax(1)
        probs = torch.stack([attention[:, task.support_y == c].sum(1) for c in range(3)], 1)
        expected.append(-probs.gather(1, task.query_y[:, None]).log().mean())
    loss, _ = learner.meta_loss(batch)
    assert loss.item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-5)


def test_full_context_embeddings_train_every_part() -> None:
    learner = fa.MatchingNet(fa.nn.Conv4(1, None, hidden=8, image_size=16, pool="stride"), fce=True, fce_steps=2)
    batch = fa.FewShotTasks(random_dataset(), ways=3, shots=2, queries=2).sample(2)
    loss, metrics = learner.meta_loss(batch)
    loss.backward()
    for name, p in learner.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    predictor = learner.adapt(batch[0].support_x, batch[0].support_y)
    probs = predictor(batch[0].query_x).exp()
    torch.testing.assert_close(probs.sum(1), torch.ones(len(probs)))


def test_fce_needs_an_embedding_size() -> None:
    with pytest.raises(ConfigError, match="embedding_dim"):
        fa.MatchingNet(torch.nn.Flatten(), fce=True)


def test_a_temperature_sharpens_the_attention() -> None:
    support_x, support_y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 2.0]]), torch.tensor([0, 1, 1])
    query_x = torch.tensor([[1.0, 0.0]])  # cosines 1, 0, 0; over a temperature of 0.5: 2, 0, 0
    learner = fa.MatchingNet(torch.nn.Flatten(), temperature=0.5)
    e2 = math.e**2
    torch.testing.assert_close(
        learner.adapt(support_x, support_y)(query_x).exp(), torch.tensor([[e2 / (e2 + 2), 2 / (e2 + 2)]])
    )
    learned = fa.MatchingNet(torch.nn.Flatten(), learn_temperature=True)
    assert [name for name, _ in learned.named_parameters()] == ["temperature.log_value"]
