"""ClassDataset: validation, subsets and rotated classes."""

from __future__ import annotations

import pytest
import torch

from fastadapt.datasets import ClassDataset
from fastadapt.errors import ConfigError, DataError


def test_images_are_grouped_by_class() -> None:
    images = torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1)
    dataset = ClassDataset(images, torch.tensor([1, 0, 1, 0, 2, 2]), ["a", "b", "c"])
    assert dataset.images.flatten().tolist() == [1, 3, 0, 2, 4, 5]
    assert dataset.counts.tolist() == [2, 2, 2] and dataset.starts.tolist() == [0, 2, 4]
    sub = dataset.subset(["c", "a"])
    assert sub.class_names == ["c", "a"] and sub.images.flatten().tolist() == [4, 5, 1, 3]


def test_rotations_make_new_classes_counter_clockwise() -> None:
    image = torch.tensor([[1, 2], [3, 4]], dtype=torch.uint8).view(1, 1, 2, 2)
    dataset = ClassDataset(image, torch.tensor([0]), ["a"]).with_rotations()
    assert dataset.class_names == ["a/rot000", "a/rot090", "a/rot180", "a/rot270"]
    assert dataset.images[1, 0].tolist() == [[2, 4], [1, 3]]  # 90 degrees counter-clockwise
    assert dataset.images[2, 0].tolist() == [[4, 3], [2, 1]]
    with pytest.raises(ConfigError):
        ClassDataset(image, torch.tensor([0]), ["a"]).with_rotations([45])


@pytest.mark.parametrize(
    "images, labels, names, message",
    [
        (torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]), ["a", "b"], "uint8"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0]), ["a"], "one label per image"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 2]), ["a", "b"], "labels must lie"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 0]), ["a", "b"], "no images"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]), ["a", "a"], "duplicate"),
    ],
)
def test_malformed_datasets_are_refused(images, labels, names, message) -> None:
    with pytest.raises(DataError, match=message):
        ClassDataset(images, labels, names)
