"""Validation records, best-state selection and the train records of metrics.jsonl."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fastadapt.errors import CheckpointError, ConfigError
from fastadapt.evaluate import EvalResult
from fastadapt.training.metrics import MetricWindow, train_record
from fastadapt.training.settings import TrainConfig
from fastadapt.training.validation import Best, Ranking, validation_record


def _result(metric: str, mean: float) -> EvalResult:
    return EvalResult(metric, mean, ci95=0.1, std=0.2, episodes=4, loss=1.5, loss_ci95=0.3)


def test_the_validation_record() -> None:
    assert validation_record(_result("accuracy", 0.5), 10) == {
        "step": 10, "kind": "val", "val_accuracy": 0.5, "val_ci95": 0.1, "val_loss": 1.5
    }


def test_best_keeps_the_highest_accuracy_and_a_copy_of_the_state() -> None:
    model, best = torch.nn.Linear(1, 1), Best()
    assert best.consider(_result("accuracy", 0.5), 1, model) and best.step == 1
    kept = best.state["weight"].clone()  # type: ignore[index]
    with torch.no_grad():
        model.weight.add_(1)
    assert not best.consider(_result("accuracy", 0.5), 2, model)  # a tie is no improvement
    assert not best.consider(_result("accuracy", float("nan")), 3, model)
    assert torch.equal(best.state["weight"], kept)  # type: ignore[index]
    assert best.consider(_result("accuracy", 0.6), 4, model) and best.record["score"] == 0.6  # type: ignore[index]


def test_errors_are_better_lower() -> None:
    model, best = torch.nn.Linear(1, 1), Best({"step": 1, "score": -0.5, **_result("mse", 0.5).to_dict()}, None)
    assert not best.consider(_result("mse", 0.7), 2, model)
    assert best.consider(_result("mse", 0.3), 3, model) and best.record == {
        "step": 3, "score": -0.3, **_result("mse", 0.3).to_dict()
    }


def test_selecting_on_the_loss_ranks_by_the_lower_query_loss_whatever_the_metric() -> None:
    model, best = torch.nn.Linear(1, 1), Best(select="loss")
    assert not best.consider(dataclasses.replace(_result("accuracy", 0.9), loss=float("nan")), 1, model)
    assert best.record is None  # a NaN is never the best, not even the first
    assert best.consider(dataclasses.replace(_result("accuracy", 0.5), loss=0.8), 2, model)
    assert not best.consider(dataclasses.replace(_result("accuracy", 0.9), loss=0.9), 3, model)  # higher loss
    assert best.consider(dataclasses.replace(_result("accuracy", 0.4), loss=0.7), 4, model)
    assert best.record is not None and (best.step, best.record["score"]) == (4, -0.7)
    ranking = Ranking(keep=2, select="loss")
    for step, loss in ((1, 0.5), (2, 0.3), (3, 0.4)):
        ranking.offer(dataclasses.replace(_result("accuracy", 1.0 - step / 10), loss=loss), step)
    assert ranking.steps == [2, 3]


def test_a_resumed_best_is_scored_again_under_the_runs_rule() -> None:
    model, kept = torch.nn.Linear(1, 1), dataclasses.replace(_result("accuracy", 0.6), loss=0.5).to_dict()
    best = Best({"step": 1, "score": 0.6, **kept}, None, select="loss")  # written while ranking by accuracy
    assert best.record is not None and best.record["score"] == -0.5
    assert best.consider(dataclasses.replace(_result("accuracy", 0.2), loss=0.01), 2, model)
    assert Best({"step": 1, "score": float("nan"), **_result("accuracy", float("nan")).to_dict()}, None).step is None


def test_a_ranking_resumed_under_another_rule_is_refused() -> None:
    entries = [{"step": 4, "score": 0.7}]  # written before train.select: ranked by the metric
    assert Ranking(2, list(entries)).steps == [4]
    with pytest.raises(CheckpointError, match="ranked its best validations by the metric and cannot go on by the loss"):
        Ranking(2, list(entries), select="loss")


def test_select_names_a_known_rule() -> None:
    with pytest.raises(ConfigError, match="select must be one of metric, loss, got 'val_loss'"):
        TrainConfig(steps=1, select="val_loss")
    with pytest.raises(ConfigError, match="got 'Loss'"):
        Best(select="Loss")


def test_the_ranking_keeps_the_best_few_best_first() -> None:
    ranking = Ranking(keep=3)
    offers = [(1, 0.5), (2, 0.7), (3, float("nan")), (4, 0.5), (5, 0.6), (6, 0.4), (7, 0.9)]
    entered = [ranking.offer(_result("accuracy", mean), step) for step, mean in offers]
    assert entered == [True, True, False, True, True, False, True]
    assert ranking.steps == [7, 2, 5]  # 0.9, 0.7, 0.6: the two 0.5s (steps 1 and 4) fell out
    tie = Ranking(keep=2)
    assert [tie.offer(_result("accuracy", 0.5), step) for step in (1, 2, 3)] == [True, True, False]
    assert tie.steps == [1, 2]  # of equal scores the earlier ranks first
    errors = Ranking(keep=2)
    for step, mse in ((1, 0.3), (2, 0.1), (3, 0.2)):
        errors.offer(_result("mse", mse), step)
    assert errors.steps == [2, 3]


def test_the_window_of_train_metrics_and_its_record() -> None:
    window = MetricWindow()
    window.add({"loss": 1.0, "accuracy": 0.5})
    window.add({"loss": 3.0, "accuracy": 1.0})
    assert window.close() == {"loss": 2.0, "accuracy": 0.75} == window.means
    assert window.close() == {}  # a window of skipped batches only
    assert list(train_record(4, {"loss": 2.0}, 0.1, 9.5, skipped=0)) == ["step", "kind", "loss", "lr", "elapsed_s"]
    skipped = {"step": 4, "kind": "train", "lr": 0.1, "elapsed_s": 9.5, "skipped": 2}
    assert train_record(4, {}, 0.1, 9.5, skipped=2) == skipped
