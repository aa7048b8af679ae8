"""The transfer-learning baseline: pre-training on dataset classes, a new head per task."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import random_dataset, to_double

import fastadapt as fa
from fastadapt.algorithms.minibatches import epoch_batches, task_key
from fastadapt.errors import ConfigError


class _Identity(torch.nn.Flatten):
    embedding_dim = 2


def test_tasks_record_the_dataset_class_behind_each_label() -> None:
    dataset = random_dataset(classes=8, per_class=4, size=4)
    batch = fa.FewShotTasks(dataset, ways=3, shots=1, queries=2, seed=1).sample(5)
    images = dataset.images.float() / 255
    for task in batch:
        inputs, labels = torch.cat([task.support_x, task.query_x]), torch.cat([task.support_y, task.query_y])
        for x, y in zip(inputs, labels, strict=True):
            rows = (images == x).flatten(1).all(1).nonzero().flatten()
            assert dataset.labels[rows].tolist() == [task.classes[y].item()]


def test_pre_training_is_cross_entropy_over_the_dataset_classes() -> None:
    dataset = random_dataset(classes=8, per_class=4, size=16)
    batch = fa.FewShotTasks(dataset, ways=3, shots=1, queries=2).sample(2)
    learner = fa.FineTune(fa.nn.Conv4(1, None, hidden=8, image_size=16), classes=8)
    loss, _ = learner.meta_loss(batch)
    expected = []
    for task in batch:
        x = torch.cat([task.support_x, task.query_x])
        y = task.classes[torch.cat([task.support_y, task.query_y])]
        expected.append(F.cross_entropy(learner.head(learner.encoder(x)), y))
    assert loss.item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-5)


def test_a_linear_head_fitted_on_the_support_set_separates_it() -> None:
    learner = fa.FineTune(_Identity(), classes=4, finetune_steps=200, finetune_lr=0.5)
    support_x = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0]])
    predict = learner.adapt(support_x, torch.tensor([0, 1, 2]))
    assert predict(support_x + 0.1).argmax(1).tolist() == [0, 1, 2]
    assert predict(support_x).softmax(1).diagonal().min() > 0.9
    assert learner.adapt(support_x, torch.tensor([0, 1, 2]), steps=0)(support_x).abs().max() == 0  # zero start


def test_a_cosine_head_starts_at_the_normalized_class_means() -> None:
    learner = fa.FineTune(_Identity(), classes=4, head="cosine", scale=5.0)
    support_x = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    logits = learner.adapt(support_x, torch.tensor([0, 0, 1]), steps=0)(torch.tensor([[1.0, 1.0]]))
    r = 2 ** -0.5
    torch.testing.assert_close(logits, torch.tensor([[5 * r, 5 * r]]))


def test_fine_tuning_the_body_adapts_a_copy() -> None:
    encoder = fa.nn.Conv4(1, None, hidden=8, image_size=16)
    learner = fa.FineTune(encoder, classes=8, finetune_body=True, finetune_steps=3)
    task = fa.FewShotTasks(random_dataset(size=16), ways=3, shots=1, queries=2).sample(1)[0]
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    frozen = fa.FineTune(encoder, classes=8, finetune_steps=3).adapt(task.support_x, task.support_y)(task.query_x)
    tuned = learner.adapt(task.support_x, task.support_y)(task.query_x)
    assert not torch.allclose(frozen, tuned)
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())


def test_tasks_without_dataset_classes_or_beyond_the_head_are_refused() -> None:
    learner = fa.FineTune(fa.nn.Conv4(1, None, hidden=8, image_size=16), classes=4)
    batch = fa.FewShotTasks(random_dataset(classes=8, size=16), ways=3, shots=1, queries=2).sample(2)
    with pytest.raises(ConfigError, match="classes"):
        learner.meta_loss(fa.TaskBatch(batch.support_x, batch.support_y, batch.query_x, batch.query_y))
    batch.classes[:] = 7
    with pytest.raises(ConfigError, match="4 classes"):
        learner.meta_loss(batch)


def test_chens_fitting_is_torch_sgd_on_fresh_passes_in_batches_of_four() -> None:
    """Chen et al.'s fine-tuning (SGD 0.01, momentum 0.9, dampening 0.9, weight decay 1e-3, batches of 4), written
    with torch.optim.SGD on a zero-started nn.Linear over the same mini-batches."""
    torch.manual_seed(0)
    encoder = fa.nn.Conv4(1, None, hidden=8, image_size=16).double()
    learner = fa.FineTune(encoder, classes=8, finetune_lr=0.01, finetune_momentum=0.9, finetune_dampening=0.9,
                          finetune_weight_decay=1e-3, finetune_batch=4, finetune_epochs=3).eval()
    task = to_double(fa.FewShotTasks(random_dataset(size=16), ways=5, shots=2, queries=3, seed=4).sample(1))[0]
    head = torch.nn.Linear(encoder.embedding_dim, 5).double()
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    optimizer = torch.optim.SGD(head.parameters(), lr=0.01, momentum=0.9, dampening=0.9, weight_decay=1e-3)
    with torch.no_grad():
        features = encoder(task.support_x)
    batches = epoch_batches(task_key(task.support_x), 10, 4, 9)  # 3 epochs of batches 4, 4, 2
    for batch in batches:
        optimizer.zero_grad()
        F.cross_entropy(head(features[batch]), task.support_y[batch]).backward()
        optimizer.step()
    expected = head(encoder(task.query_x))
    torch.testing.assert_close(learner.adapt(task.support_x, task.support_y)(task.query_x), expected,
                               rtol=1e-10, atol=1e-12)
    shorter = learner.adapt(task.support_x, task.support_y, steps=2)(task.query_x)  # --inner-steps counts steps
    assert not torch.allclose(shorter, expected)


@pytest.mark.parametrize("bad", [{"finetune_dampening": 1.5}, {"finetune_momentum": -0.1}, {"finetune_batch": 0},
                                 {"finetune_epochs": -1}])
def test_impossible_fitting_settings_are_one_line(bad: dict) -> None:
    with pytest.raises(ConfigError, match="finetune_"):
        fa.FineTune(_Identity(), classes=4, **bad)
