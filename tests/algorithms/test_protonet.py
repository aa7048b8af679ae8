"""Prototypical networks on hand-computable embeddings."""

from __future__ import annotations

import pytest
import torch
from helpers import random_dataset

import fastadapt as fa
from fastadapt.algorithms.protonet import prototypes
from fastadapt.errors import ConfigError


def test_logits_are_negative_squared_distances_to_class_means() -> None:
    learner = fa.ProtoNet(torch.nn.Flatten())
    support_x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 6.0]])
    support_y = torch.tensor([0, 0, 1, 1])
    query_x = torch.tensor([[1.0, 1.0], [0.0, 5.0]])
    logits = learner.adapt(support_x, support_y)(query_x)
    # Prototypes (1, 0) and (0, 5): distances by hand.
    expected = -torch.tensor([[0.0 + 1.0, 1.0 + 16.0], [1.0 + 25.0, 0.0 + 0.0]])
    torch.testing.assert_close(logits, expected)


def test_prototypes_with_unordered_labels() -> None:
    embeddings = torch.tensor([[1.0], [10.0], [3.0], [20.0]])
    torch.testing.assert_close(prototypes(embeddings, torch.tensor([0, 1, 0, 1]), 2), torch.tensor([[2.0], [15.0]]))


def test_meta_loss_is_cross_entropy_of_the_distance_logits() -> None:
    learner = fa.ProtoNet(torch.nn.Flatten())
    batch = fa.FewShotTasks(random_dataset(size=4), ways=3, shots=2, queries=2).sample(2)
    expected = []
    for task in batch:
        x = task.support_x.flatten(1)
        centers = torch.stack([x[task.support_y == c].mean(0) for c in range(3)])
        logits = -torch.cdist(task.query_x.flatten(1), centers).pow(2)
        expected.append(torch.nn.functional.cross_entropy(logits, task.query_y))
    loss, metrics = learner.meta_loss(batch)
    assert loss.item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-5)
    assert 0.0 <= metrics["accuracy"] <= 1.0


def test_vmap_and_loop_agree() -> None:
    encoder = fa.nn.Conv4(1, hidden=8, image_size=16).double()
    batch = fa.FewShotTasks(random_dataset(size=16), ways=4, shots=2, queries=3).sample(3)
    batch = fa.TaskBatch(batch.support_x.double(), batch.support_y, batch.query_x.double(), batch.query_y)
    grads = {}
    for vmap in (False, True):
        loss, _ = fa.ProtoNet(encoder, vmap=vmap).meta_loss(batch)
        grads[vmap] = torch.autograd.grad(loss, list(encoder.parameters()))
    scale = max(g.abs().max().item() for g in grads[False])
    assert max((a - b).abs().max().item() for a, b in zip(grads[False], grads[True], strict=True)) <= 1e-8 * scale


def test_cosine_logits_are_cosine_similarities_to_class_means_over_the_temperature() -> None:
    learner = fa.ProtoNet(torch.nn.Flatten(), distance="cosine", temperature=0.5)
    support_x = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 4.0]])
    support_y = torch.tensor([0, 0, 1, 1])
    query_x = torch.tensor([[1.0, 1.0], [-2.0, 0.0]])
    logits = learner.adapt(support_x, support_y)(query_x)
    # Prototypes (2, 0) and (0, 3): cosines 1/sqrt(2), 1/sqrt(2) and -1, 0; divided by 0.5.
    r = 2 ** -0.5
    torch.testing.assert_close(logits, torch.tensor([[r, r], [-1.0, 0.0]]) / 0.5)


def test_euclidean_temperature_divides_the_distances() -> None:
    plain = fa.ProtoNet(torch.nn.Flatten())
    hot = fa.ProtoNet(torch.nn.Flatten(), temperature=4.0)
    x, y = torch.randn(6, 3), torch.tensor([0, 0, 1, 1, 2, 2])
    torch.testing.assert_close(hot.adapt(x, y)(x), plain.adapt(x, y)(x) / 4.0)


def test_a_learned_temperature_is_a_parameter_with_a_gradient() -> None:
    learner = fa.ProtoNet(
        fa.nn.Conv4(1, None, hidden=8, image_size=16), distance="cosine", temperature=0.1, learn_temperature=True
    )
    assert any(name == "temperature.log_value" for name, _ in learner.named_parameters())
    loss, _ = learner.meta_loss(fa.FewShotTasks(random_dataset(), ways=3, shots=1, queries=2).sample(2))
    loss.backward()
    assert learner.temperature.log_value.grad is not None and learner.temperature.log_value.grad.abs() > 0
    assert fa.ProtoNet(torch.nn.Flatten()).state_dict() == {}  # a fixed temperature comes from the config


@pytest.mark.parametrize(
    "kwargs, message", [({"distance": "manhattan"}, "distance"), ({"temperature": 0.0}, "temperature")]
)
def test_bad_options_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        fa.ProtoNet(torch.nn.Flatten(), **kwargs)
