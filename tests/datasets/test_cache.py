"""Decoded dataset caches: a damaged or stale file is rebuilt, and any other error is raised, not hidden."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from helpers import FUZZ_SCALE, mutated, random_dataset

from fastadapt.datasets import cache
from fastadapt.datasets.cache import CACHE_FORMAT, load_cache, save_cache


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "random-16px.pt"
    save_cache(path, random_dataset(classes=4, per_class=3), {"source": "test"})
    return path


def test_a_cache_loads_back_as_it_was_saved(saved: Path) -> None:
    loaded, meta = load_cache(saved, "random")
    original = random_dataset(classes=4, per_class=3)
    assert meta == {"source": "test"} and loaded.name == "random" and loaded.class_names == original.class_names
    assert torch.equal(loaded.images, original.images) and torch.equal(loaded.labels, original.labels)


@pytest.mark.parametrize(
    "content",
    [
        {"format": CACHE_FORMAT + 1, "images": torch.zeros(1, 1, 8, 8, dtype=torch.uint8)},  # another version's
        {"format": CACHE_FORMAT, "images": torch.zeros(1, 1, 8, 8, dtype=torch.uint8)},  # keys missing
        torch.zeros(3),  # not a cache at all
        {"format": CACHE_FORMAT, "images": torch.zeros(2, 1, 8, 8, dtype=torch.uint8), "labels": torch.tensor([0]),
         "class_names": ["a"], "meta": {}},  # readable, but its labels do not match its images
    ],
    ids=["stale", "incomplete", "foreign", "inconsistent"],
)
def test_a_stale_or_foreign_cache_is_rebuilt(tmp_path: Path, content: object) -> None:
    torch.save(content, tmp_path / "c.pt")
    assert load_cache(tmp_path / "c.pt", "x") is None
    assert load_cache(tmp_path / "absent.pt", "x") is None


FUZZ_TRIALS = 300 * FUZZ_SCALE


def test_damaged_cache_files_are_rebuilt_never_raised(saved: Path, tmp_path: Path) -> None:
    """Torn and byte-flipped copies of a cache load or give ``None``: whatever torch.load raises on them is caught."""
    good, damaged = saved.read_bytes(), tmp_path / "damaged.pt"
    unreadable = 0
    for trial in range(FUZZ_TRIALS):
        rng = random.Random(trial)
        head = trial % 2 == 0  # half the trials damage the pickled structure at the start, not the pixels
        data = mutated(rng, good[:512], cut=False) + good[512:] if head else mutated(rng, good, cut=trial % 4 == 1)
        damaged.write_bytes(data)
        unreadable += load_cache(damaged, "x") is None
    assert 0 < unreadable < FUZZ_TRIALS


def test_errors_that_are_no_bad_file_are_raised(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def out_of_memory(*args: object, **kwargs: object) -> None:
        raise MemoryError

    def broken(*args: object, **kwargs: object) -> None:
        raise TypeError("a bug in the code that reads a good cache")  # caught from torch.load alone

    with monkeypatch.context() as patch:
        patch.setattr(torch, "load", out_of_memory)
        with pytest.raises(MemoryError):
            load_cache(saved, "x")
    monkeypatch.setattr(cache, "ClassDataset", broken)
    with pytest.raises(TypeError, match="a bug"):
        load_cache(saved, "x")
