"""The test-time ensemble: each member adapts on its own, the prediction is the mean of their outputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import random_dataset, to_double

import fastadapt as fa
from fastadapt.errors import ConfigError


def _members() -> list[fa.MAML]:
    members = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        members.append(fa.MAML(fa.nn.Conv4(1, 4, hidden=6, image_size=16), inner_lr=0.3, inner_steps=2).double())
    return members


def _batch() -> fa.TaskBatch:
    return to_double(fa.FewShotTasks(random_dataset(size=16), ways=4, shots=2, queries=3, seed=1).sample(3))


def test_the_ensemble_predicts_the_mean_of_its_members_outputs() -> None:
    members, task = _members(), _batch()[0]
    ensemble = fa.Ensemble(members).eval()
    outputs = [m.eval().adapt(task.support_x, task.support_y)(task.query_x) for m in members]
    expected = (outputs[0] + outputs[1] + outputs[2]) / 3
    torch.testing.assert_close(ensemble.adapt(task.support_x, task.support_y)(task.query_x), expected)


def test_the_ensemble_is_scored_on_the_mean_logits() -> None:
    members, batch = _members(), _batch()
    ensemble = fa.Ensemble(members).eval()
    scores = ensemble.evaluate(batch)
    for k, task in enumerate(batch):
        logits = sum(m.adapt(task.support_x, task.support_y)(task.query_x) for m in members) / 3
        assert scores["loss"][k].item() == pytest.approx(F.cross_entropy(logits, task.query_y).item(), rel=1e-12)
        accuracy = (logits.argmax(-1) == task.query_y).double().mean().item()
        assert scores["accuracy"][k].item() == pytest.approx(accuracy)
    alone = fa.Ensemble(members[:1]).eval().evaluate(batch)  # one member: the member itself
    torch.testing.assert_close(alone["loss"], members[0].evaluate(batch)["loss"])


def test_an_ensemble_needs_members() -> None:
    with pytest.raises(ConfigError, match="at least one member"):
        fa.Ensemble([])
