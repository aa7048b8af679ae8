"""Siamese networks on a constructed embedding and verifier."""

from __future__ import annotations

import pytest
import torch
from helpers import random_dataset

import fastadapt as fa
from fastadapt.augment import affine_distortions


class _Identity(torch.nn.Flatten):
    embedding_dim = 2


def _learner(distortions: bool = False) -> fa.Siamese:
    learner = fa.Siamese(_Identity(), distortions=distortions)
    with torch.no_grad():  # p(same) = sigmoid(1 - L1 distance)
        learner.verifier.weight.fill_(-1.0)
        learner.verifier.bias.fill_(1.0)
    return learner


def test_one_shot_picks_the_most_similar_support_example() -> None:
    learner = _learner()
    support_x = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 5.0]])
    query_x = torch.tensor([[2.5, 0.5]])  # L1 distances 3, 1, 7
    scores = learner.adapt(support_x, torch.tensor([0, 1, 2]))(query_x)
    expected = torch.sigmoid(1 - torch.tensor([3.0, 1.0, 7.0])).log()
    torch.testing.assert_close(scores, expected[None])
    assert scores.argmax().item() == 1


def test_k_shot_scores_a_class_by_its_mean_similarity() -> None:
    learner = _learner()
    support_x = torch.tensor([[0.0, 0.0], [4.0, 0.0], [1.0, 0.0], [1.5, 0.0]])
    support_y = torch.tensor([0, 0, 1, 1])
    query_x = torch.tensor([[0.0, 0.0]])  # class 0: distances 0 and 4; class 1: 1 and 1.5
    p = lambda d: torch.sigmoid(torch.tensor(1.0 - d))  # noqa: E731
    expected = torch.stack([(p(0) + p(4)) / 2, (p(1) + p(1.5)) / 2]).log()
    torch.testing.assert_close(learner.adapt(support_x, support_y)(query_x), expected[None])


def test_training_objective_weighs_same_and_different_pairs_equally() -> None:
    learner = _learner()
    support_x, support_y = torch.tensor([[0.0, 0.0], [2.0, 0.0]]), torch.tensor([0, 1])
    query_x, query_y = torch.tensor([[0.0, 1.0]]), torch.tensor([0])
    objective, _ = learner.task_objective(support_x, support_y, query_x, query_y, 2)
    same = -torch.log(torch.sigmoid(torch.tensor(1.0 - 1.0)))  # distance 1 to its own class
    different = -torch.log(1 - torch.sigmoid(torch.tensor(1.0 - 3.0)))  # distance 3 to the other
    assert objective.item() == pytest.approx(0.5 * same.item() + 0.5 * different.item(), rel=1e-6)


def test_distortions_change_training_images_only_and_keep_their_shape() -> None:
    torch.manual_seed(0)
    batch = fa.FewShotTasks(random_dataset(), ways=3, shots=1, queries=2).sample(2)
    learner = fa.Siamese(fa.nn.Conv4(1, None, hidden=8, image_size=16), distortions=True)
    distorted = learner.training_batch(batch)
    assert distorted.support_x.shape == batch.support_x.shape
    assert not torch.equal(distorted.support_x, batch.support_x)
    assert torch.equal(distorted.query_y, batch.query_y)
    assert fa.Siamese(fa.nn.Conv4(1, None, hidden=8, image_size=16)).training_batch(batch) is batch


def test_affine_distortions_are_the_identity_when_no_component_is_drawn() -> None:
    images = torch.rand(4, 1, 16, 16)
    torch.testing.assert_close(affine_distortions(images, p=0.0), images, atol=1e-5, rtol=0)


def test_a_pure_shift_moves_the_image_at_most_shift_px_and_keeps_its_mass() -> None:
    image = torch.zeros(1, 1, 8, 8)
    image[0, 0, 3, 3] = 1.0
    shifted = affine_distortions(image, rotation_deg=0, shear=0, scale=(1, 1), shift_px=2.0, p=1.0)
    assert shifted.sum().item() == pytest.approx(1.0, abs=1e-4)  # mass moves, none is lost
    row, col = divmod(int(shifted.flatten().argmax()), 8)
    assert abs(row - 3) <= 2 and abs(col - 3) <= 2


def test_siamese_learns_pairs_on_separable_data() -> None:
    torch.manual_seed(0)
    tasks = fa.FewShotTasks(random_dataset(classes=6, per_class=6, size=16), ways=3, shots=1, queries=2, seed=0)
    learner = fa.Siamese(fa.nn.Conv4(1, None, hidden=8, image_size=16))
    optimizer = torch.optim.Adam(learner.parameters(), 1e-2)
    first = None
    for _ in range(30):
        optimizer.zero_grad()
        loss, _ = learner.meta_backward(tasks.sample(4))
        first = first if first is not None else loss
        optimizer.step()
    assert loss < 0.7 * first
