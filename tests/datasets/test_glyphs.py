"""The embedded glyphs dataset: split by script, distinct letters, reproducible drawings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fastadapt.datasets import Glyphs
from fastadapt.datasets.glyphs import DRAWINGS, _drawing, _letters, font_files, split_of
from fastadapt.errors import ConfigError


def test_splits_are_disjoint_scripts_covering_every_class(glyphs_root: Path) -> None:
    splits = {name: Glyphs(glyphs_root, split=name) for name in ("train", "val", "test")}
    everything = Glyphs(glyphs_root, split="all")
    names = [set(d.class_names) for d in splits.values()]
    assert sum(len(n) for n in names) == everything.num_classes and set.union(*names) == set(everything.class_names)
    scripts = {split: {n.split("/")[0] for n in d.class_names} for split, d in splits.items()}
    assert scripts["train"].isdisjoint(scripts["val"] | scripts["test"]) and scripts["val"].isdisjoint(scripts["test"])
    # sized like Omniglot's splits: hundreds of training classes, enough held-out classes for 20-way tasks
    assert splits["train"].num_classes > 500 and splits["val"].num_classes >= 60 and splits["test"].num_classes >= 150
    assert all(d.counts.eq(DRAWINGS).all() for d in splits.values())
    assert split_of("GEORGIAN") == "test" and split_of("LATIN") == "train"


def test_images_are_drawings_of_bright_ink(glyphs_root: Path) -> None:
    dataset = Glyphs(glyphs_root, split="test")
    assert dataset.image_shape == (1, 28, 28)
    assert dataset.images.amax(dim=(1, 2, 3)).min() > 150
    assert dataset.images.float().mean() < 80


def test_look_alike_letters_are_kept_once() -> None:
    codepoints = {c for c, _ in _letters(font_files())}
    assert ord("A") in codepoints and ord("b") in codepoints
    assert 0x0391 not in codepoints  # Greek capital Alpha draws like A
    assert 0x0410 not in codepoints  # Cyrillic capital A too


def test_drawings_vary_and_replay_from_the_seed() -> None:
    faces = font_files()
    first = [_drawing(ord("k"), faces, 28, np.random.default_rng(1)) for _ in range(2)]
    again = _drawing(ord("k"), faces, 28, np.random.default_rng(1))
    other = _drawing(ord("k"), faces, 28, np.random.default_rng(2))
    assert np.array_equal(first[0], again) and not np.array_equal(again, other)


def test_unknown_split_is_refused(glyphs_root: Path) -> None:
    with pytest.raises(ConfigError, match="unknown glyphs split"):
        Glyphs(glyphs_root, split="validation")
