"""Early stopping (``train.patience``) and Snell et al.'s retraining on the training and validation classes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from helpers import random_dataset

import fastadapt as fa
from fastadapt.checkpoint import load_checkpoint
from fastadapt.config import build_config, build_tasks
from fastadapt.datasets.glyphs import Glyphs
from fastadapt.errors import CheckpointError, ConfigError
from fastadapt.experiment import evaluate_run, retest_run, run_experiment


def _protonet() -> fa.ProtoNet:
    torch.manual_seed(0)
    return fa.ProtoNet(fa.nn.Conv4(1, None, hidden=8, image_size=16))


def test_patience_stops_once_validation_stopped_improving_and_a_resume_adds_nothing(tmp_path: Path) -> None:
    train = fa.FewShotTasks(random_dataset(seed=0), ways=3, shots=1, queries=2, seed=0)
    val = fa.FewShotTasks(random_dataset(seed=1), ways=3, shots=1, queries=2, seed=1)
    settings = {"meta_batch": 2, "val_every": 1, "val_episodes": 4, "patience": 3, "progress": False}
    first = fa.meta_train(_protonet(), train, 60, val_tasks=val, run_dir=tmp_path / "run", **settings)
    assert first.best_step is not None and first.steps < 60  # random labels: validation soon stops improving
    assert first.steps - first.best_step == 3  # exactly patience updates after the best
    resumed = fa.meta_train(_protonet(), train, 60, val_tasks=val, run_dir=tmp_path / "run", resume=True, **settings)
    assert (resumed.steps, resumed.best_step) == (first.steps, first.best_step)


def test_selecting_on_the_loss_stops_at_the_lowest_validation_loss(tmp_path: Path) -> None:
    train = fa.FewShotTasks(random_dataset(seed=0), ways=3, shots=1, queries=2, seed=0)
    val = fa.FewShotTasks(random_dataset(seed=1), ways=3, shots=1, queries=2, seed=1)
    settings = {"meta_batch": 2, "val_every": 1, "val_episodes": 4, "patience": 3, "progress": False}
    result = fa.meta_train(_protonet(), train, 60, val_tasks=val, run_dir=tmp_path, select="loss", **settings)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [(r["val_loss"], r["step"]) for r in records if r["kind"] == "val"]
    assert result.best_step == min(losses)[1] and result.steps - result.best_step == 3
    assert result.best_validation is not None and result.best_validation["score"] == -min(losses)[0]


class _Broken(torch.nn.Module):
    """An encoder whose every output is NaN: no validation is ever a number."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(16 * 16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1)) * float("nan")


def test_patience_counts_from_the_start_while_no_validation_is_a_number(tmp_path: Path) -> None:
    train = fa.FewShotTasks(random_dataset(seed=0), ways=3, shots=1, queries=2, seed=0)
    val = fa.FewShotTasks(random_dataset(seed=1), ways=3, shots=1, queries=2, seed=1)
    settings = {"meta_batch": 2, "val_every": 1, "val_episodes": 4, "patience": 3, "progress": False,
                "skip_nonfinite": True, "select": "loss"}  # the loss is NaN (the accuracy of argmax is not)
    result = fa.meta_train(fa.ProtoNet(_Broken()), train, 60, val_tasks=val, run_dir=tmp_path, **settings)
    assert (result.steps, result.best_step) == (3, None)


def test_retraining_on_trainval_trains_best_plus_patience_and_tests_that_model(
    glyphs_root: Path, tmp_path: Path
) -> None:
    config = build_config("protonet-glyphs-5w1s", [
        f"dataset.data_dir={glyphs_root}", "model.hidden=8", "train.steps=40", "train.meta_batch=2",
        "train.val_every=2", "train.val_episodes=4", "train.patience=4", "train.retrain_on_trainval=true",
        "test.episodes=6",
    ])
    result = run_experiment(config, tmp_path / "run", progress=False)
    retrained = result["retrained_on_trainval"]
    assert retrained["steps"] == result["best_step"] + 4 and Path(retrained["run"]) == tmp_path / "run" / "trainval"
    records = [json.loads(line) for line in (tmp_path / "run" / "trainval" / "metrics.jsonl").read_text().splitlines()]
    assert not [r for r in records if r["kind"] == "val"]  # nothing is left to validate on
    again = evaluate_run(tmp_path / "run" / "trainval" / "last.pt", episodes=6)  # the retrained model, tested again
    assert again.mean == pytest.approx(result["test"]["accuracy"]) and result["tested_step"] == retrained["steps"]
    assert evaluate_run(tmp_path / "run").mean == again.mean  # the run folder stands for the model it tested
    retested = retest_run(tmp_path / "run", dataclasses.replace(config.test, episodes=4))
    assert retested["tested_step"] == retrained["steps"] and retested["test"]["episodes"] == 4
    partial = load_checkpoint(tmp_path / "run" / "trainval" / "last.pt")
    torch.save({**partial, "step": partial["step"] - 2}, tmp_path / "run" / "trainval" / "last.pt")
    assert evaluate_run(tmp_path / "run", episodes=2).episodes == 2  # tested, as when a time budget ended it
    (tmp_path / "run" / "result.json").unlink()  # as if stopped two updates before retraining ended
    with pytest.raises(CheckpointError, match=f"retrained on train \\+ val only to step {retrained['steps'] - 2} of "):
        evaluate_run(tmp_path / "run")
    assert evaluate_run(tmp_path / "run" / "trainval" / "last.pt", episodes=2).episodes == 2  # the file is its model
    (tmp_path / "run" / "trainval" / "last.pt").unlink()  # as if stopped before retraining wrote a checkpoint
    with pytest.raises(CheckpointError, match="retrained on train \\+ val, which has not been trained yet"):
        evaluate_run(tmp_path / "run")
    trainval = build_tasks(config, "trainval").dataset.class_names
    train, val = Glyphs(glyphs_root, split="train").class_names, Glyphs(glyphs_root, "val").class_names
    assert set(trainval) == set(train) | set(val)


def test_retraining_needs_patience_and_a_validation_split() -> None:
    with pytest.raises(ConfigError, match="train.retrain_on_trainval retrains for the best step plus train.patience"):
        build_config("protonet-glyphs-5w1s", ["train.retrain_on_trainval=true"])
    with pytest.raises(ConfigError, match="train.patience must be at least 1, got 0"):
        build_config("protonet-glyphs-5w1s", ["train.patience=0"])
