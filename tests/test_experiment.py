"""Whole runs that test other than their best checkpoint: the last state (``test.checkpoint``) and the top-k
ensemble of ``test.ensemble``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import random_dataset, run_cli

import fastadapt as fa
from fastadapt import experiment
from fastadapt.checkpoint import load_checkpoint
from fastadapt.config import build_config
from fastadapt.errors import CheckpointError, ConfigError
from fastadapt.experiment import learner_with, load_learner


def _same_weights(learner: torch.nn.Module, checkpoint: Path) -> bool:
    saved = load_checkpoint(checkpoint)["model"]
    return all(torch.equal(value, saved[name]) for name, value in learner.state_dict().items())


@pytest.mark.parametrize("tested", ["best", "last"])
def test_a_run_tests_the_checkpoint_its_config_names(glyphs_root: Path, tmp_path: Path, tested: str) -> None:
    config = build_config("maml-glyphs-5w1s", [
        f"dataset.data_dir={glyphs_root}", "model.hidden=8", "train.steps=9", "train.meta_batch=2",
        "train.val_every=3", "train.val_episodes=4", "test.episodes=6", "seed=1", f"test.checkpoint={tested}",
    ])
    run = tmp_path / "run"
    result = experiment.run_experiment(config, run, progress=False)
    assert result["best_step"] != 9  # this seed's best validation is not its last state, so the two differ
    file = run / f"{tested}.pt"
    assert result["tested_step"] == load_checkpoint(file)["step"] == (9 if tested == "last" else result["best_step"])
    learner, _ = load_learner(run)  # the run folder: what its test tested
    assert _same_weights(learner, file) and not _same_weights(learner, run / ("best.pt" if tested == "last" else
                                                                            "last.pt"))
    again = experiment.evaluate_run(file)  # the checkpoint file itself, tested again
    assert again.mean == pytest.approx(result["test"]["accuracy"])


def test_a_run_tests_the_ensemble_of_its_best_validations(
    glyphs_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    code, out, _ = run_cli(capsys, "train", "--preset", "maml-glyphs-5w1s", "--run-dir", str(run), "--no-progress",
                           f"dataset.data_dir={glyphs_root}", "model.hidden=8", "train.steps=8", "train.meta_batch=2",
                           "train.val_every=2", "train.val_episodes=4", "train.keep_best=3", "test.ensemble=2",
                           "test.episodes=6")
    result = json.loads((run / "result.json").read_text())
    assert code == 0 and result["ensemble"] == 2 and "the mean of the 2 best checkpoints" in out
    learner, resolved = load_learner(run, str(glyphs_root))
    assert isinstance(learner, fa.Ensemble) and len(learner.members) == 2
    ranked = [entry["step"] for entry in load_checkpoint(run / "last.pt")["top"]]
    assert len(ranked) == 3 and ranked[0] == result["best_step"]
    for member, step in zip(learner.members, ranked[:2], strict=True):  # the two best, best first
        saved = load_checkpoint(run / "top" / f"step-{step}.pt")["model"]
        assert all(torch.equal(a, saved[name]) for name, a in member.state_dict().items())
    assert experiment.test_learner(learner, resolved).mean == pytest.approx(result["test"]["accuracy"])
    single, _ = load_learner(run / "best.pt", str(glyphs_root))  # a checkpoint file is one model
    assert isinstance(single, fa.MAML)
    changed, _ = learner_with(learner, resolved, {"algorithm.test_inner_steps": 2})  # e.g. reproduce's tuning
    assert isinstance(changed, fa.Ensemble) and [m.test_inner_steps for m in changed.members] == [2, 2]
    for old, new in zip(learner.members, changed.members, strict=True):
        before, after = old.state_dict(), new.state_dict()
        assert all(torch.equal(value, after[name]) for name, value in before.items())


@pytest.mark.parametrize(("overrides", "message"), [
    (["test.ensemble=5"], "set train.keep_best >= 5 \\(it is 1\\)"),
    (["test.ensemble=2", "train.keep_best=2", "test.checkpoint=last"], "not the last state: set test.checkpoint=best"),
    (["test.ensemble=2", "train.keep_best=2", "train.patience=4", "train.retrain_on_trainval=true"],
     "needs a dataset with a validation split and no train.retrain_on_trainval"),
])
def test_an_ensemble_needs_the_checkpoints_it_averages(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config("maml-glyphs-5w1s", overrides)


def test_meta_rl_policies_are_not_ensembled() -> None:
    with pytest.raises(ConfigError, match="meta-RL policies are tested alone"):
        build_config("maml-rl-nav2d", ["test.ensemble=2", "train.keep_best=2"])


def _finished_run(glyphs_root: Path, run: Path) -> dict[str, Any]:
    config = build_config("maml-glyphs-5w1s", [
        f"dataset.data_dir={glyphs_root}", "model.hidden=8", "train.steps=4", "train.meta_batch=2",
        "train.val_every=2", "train.val_episodes=4", "test.episodes=6",
    ])
    return experiment.run_experiment(config, run, progress=False)


def test_a_retest_stopped_half_way_leaves_the_old_test_settings_and_result(
    glyphs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    _finished_run(glyphs_root, run)
    before = {name: (run / name).read_text() for name in ("config.yaml", "result.json")}
    wanted = dataclasses.replace(experiment.read_config(run).test, episodes=8)

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment, "test_learner", interrupted)
    with pytest.raises(KeyboardInterrupt):
        experiment.retest_run(run, wanted, str(glyphs_root))
    assert {name: (run / name).read_text() for name in before} == before  # so reproduce tests it again
    monkeypatch.undo()
    result = experiment.retest_run(run, wanted, str(glyphs_root))
    assert result["test"]["episodes"] == 8 and experiment.read_config(run).test.episodes == 8


def test_only_a_finished_run_is_tested_again(glyphs_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _finished_run(glyphs_root, run)
    (run / "result.json").unlink()  # as if stopped before its test
    with pytest.raises(CheckpointError, match="no finished run \\(no result.json\\) to test again: finish it first"):
        experiment.retest_run(run, experiment.read_config(run).test, str(glyphs_root))


def test_a_folder_of_meta_train_without_a_config_says_how_to_load_it(tmp_path: Path) -> None:
    learner = fa.ProtoNet(fa.nn.Conv4(1, None, hidden=8, image_size=16))
    tasks = fa.FewShotTasks(random_dataset(), ways=3, shots=1, queries=2, seed=0)
    fa.meta_train(learner, tasks, 1, run_dir=tmp_path / "run", progress=False)
    with pytest.raises(CheckpointError, match="written by meta_train without config=...; rebuild the learner"):
        load_learner(tmp_path / "run")
    with pytest.raises(CheckpointError, match="is not a run folder: it has no config.yaml"):
        load_learner(tmp_path)
