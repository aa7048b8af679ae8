"""Measures kept in a run folder: their key says exactly which weights and settings they were taken on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fastadapt.config import build_config, build_learner
from fastadapt.reproduce import kept
from fastadapt.reproduce.kept import keep_measure, kept_measure, measure_key

TAKEN = {"value": 0.5, "ci95": 0.1, "episodes": 16}


def test_a_measure_is_kept_for_the_same_weights_and_settings_wherever_the_data_lies(tmp_path: Path) -> None:
    config = build_config("protonet-glyphs-5w1s", ["model.hidden=8"])
    learner = build_learner(config)
    key = measure_key(learner, config, "test")
    keep_measure(tmp_path, key, TAKEN)
    moved = build_config("protonet-glyphs-5w1s", ["model.hidden=8", "dataset.data_dir=/elsewhere", "description=x"])
    assert kept_measure(tmp_path, measure_key(learner, moved, "test")) == TAKEN
    assert kept_measure(tmp_path, measure_key(learner, config, "val")) is None
    other_test = build_config("protonet-glyphs-5w1s", ["model.hidden=8", "test.statistics=support"])
    assert kept_measure(tmp_path, measure_key(learner, other_test, "test")) is None
    with torch.no_grad():
        next(learner.parameters()).add_(1e-3)  # trained further: another model
    assert kept_measure(tmp_path, measure_key(learner, config, "test")) is None


def test_a_damaged_file_of_kept_measures_is_measured_again(tmp_path: Path) -> None:
    (tmp_path / "measures.json").write_text('{"torn')
    assert kept_measure(tmp_path, "key") is None
    keep_measure(tmp_path, "key", TAKEN)
    assert kept_measure(tmp_path, "key") == TAKEN


def test_a_measure_that_cannot_be_kept_is_warned_about_and_the_others_are_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keep_measure(tmp_path, "key", TAKEN)
    assert kept_measure(tmp_path, "other") is None
    (tmp_path / "measures.json").write_text('{"key": {"value": 0.5}}')  # an entry without its interval
    assert kept_measure(tmp_path, "key") is None
    unreadable = tmp_path / "unreadable"
    (unreadable / "measures.json").mkdir(parents=True)  # exists, cannot be read as a file: left alone
    with pytest.warns(UserWarning, match="measures.json cannot be read\\): the next reproduce takes it again"):
        keep_measure(unreadable, "key", TAKEN)
    assert (unreadable / "measures.json").is_dir()

    def full(*args: object) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(kept, "atomic_write_text", full)
    with pytest.warns(UserWarning, match="measure not kept \\(No space left on device\\)"):
        keep_measure(tmp_path / "new", "key", TAKEN)
