"""ClassDataset: validation, subsets, rotated classes, and examples that are not images."""

from __future__ import annotations

import pytest
import torch
from helpers import raises_misuse

from fastadapt.datasets import ClassDataset
from fastadapt.errors import DataError


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
    with raises_misuse("multiples of 90 degrees"):  # only Python passes angles: the config has rotations=true
        ClassDataset(image, torch.tensor([0]), ["a"]).with_rotations([45])


@pytest.mark.parametrize(
    "examples, labels, names, message",
    [
        (torch.zeros(4), torch.tensor([0, 1, 0, 1]), ["a", "b"], r"one row per example .* shape \(4,\): .*\[n, 1\]"),
        (torch.zeros(2, 1, 4, 4).numpy(), torch.tensor([0, 1]), ["a", "b"], "got ndarray .*torch.as_tensor"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0]), ["a"], "one label per example"),
        (torch.zeros(3, 16), torch.tensor([0, 1]), ["a", "b"], "3 examples, labels of shape \\(2,\\)"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 2]), ["a", "b"], "labels must lie"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 0]), ["a", "b"], "no examples"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]), ["a", "a"], "duplicate"),
    ],
)
def test_malformed_datasets_are_refused(examples, labels, names, message) -> None:
    with pytest.raises(DataError, match=message) as error:
        ClassDataset(examples, labels, names)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "examples",
    [
        torch.arange(12, dtype=torch.float64).view(6, 2),  # features [n, d]
        torch.arange(18).view(6, 3),  # int64 token ids [n, L]
        torch.arange(36, dtype=torch.float32).view(6, 2, 3),  # signals [n, C, T]
        torch.arange(6, dtype=torch.uint8).view(6, 1, 1),  # uint8 but not [n, C, H, W]: not images
    ],
)
def test_any_examples_are_grouped_by_class_and_gathered_as_they_are(examples: torch.Tensor) -> None:
    dataset = ClassDataset(examples, torch.tensor([1, 0, 1, 0, 2, 2]), ["a", "b", "c"], name="x")
    assert not dataset.is_image and dataset.example_shape == tuple(examples.shape[1:]) and len(dataset) == 6
    assert torch.equal(dataset.examples, examples[[1, 3, 0, 2, 4, 5]])
    assert dataset.counts.tolist() == [2, 2, 2] and dataset.starts.tolist() == [0, 2, 4]
    gathered = dataset.gather(torch.tensor([[4, 0], [1, 5]]))
    assert gathered.dtype == examples.dtype and gathered.shape == (2, 2, *examples.shape[1:])
    assert torch.equal(gathered, examples[torch.tensor([[4, 1], [3, 5]])])
    assert torch.equal(dataset.subset(["c", "a"]).examples, examples[[4, 5, 1, 3]])


def test_images_are_gathered_as_floats_in_unit_range() -> None:
    images = torch.tensor([0, 51, 255], dtype=torch.uint8).view(3, 1, 1, 1)
    dataset = ClassDataset(images, torch.tensor([0, 0, 1]), ["a", "b"])
    assert dataset.is_image and dataset.image_shape == dataset.example_shape == (1, 1, 1)
    gathered = dataset.gather(torch.tensor([2, 1]))
    assert gathered.dtype == torch.float32 and torch.equal(gathered.flatten(), torch.tensor([1.0, 0.2]))
    assert dataset.pixel_mean == pytest.approx(306 / 765)
    assert repr(dataset) == "ClassDataset('', classes=2, images=3, shape=1x1x1)"


@pytest.mark.parametrize(
    "use, fix",
    [
        (lambda d: d.images, "use dataset.examples"),
        (lambda d: d.image_shape, "use dataset.example_shape"),
        (lambda d: d.pixel_mean, "brightness is defined for images alone"),
        (lambda d: d.with_rotations(), "rotations are defined for images alone"),
    ],
)
def test_image_only_properties_refuse_other_data_in_one_line(use, fix: str) -> None:
    dataset = ClassDataset(torch.zeros(4, 16), torch.tensor([0, 0, 1, 1]), ["a", "b"], name="features")
    expected = f"is for uint8 images .* 'features' holds float32 \\[16\\] examples: {fix}"
    with pytest.raises(DataError, match=expected) as error:
        use(dataset)
    assert "\n" not in str(error.value)
    assert repr(dataset) == "ClassDataset('features', classes=2, examples=4, example=float32 [16])"
