"""LabelledDataset: any map-style torch Dataset of (x, label) pairs, its labels read once, its examples lazily."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, IterableDataset

from fastadapt.datasets import ClassDataset, LabelledDataset
from fastadapt.errors import DataError


class Pairs(Dataset):
    """Items ``(xs[i], labels[i])``, counting ``__getitem__`` calls; ``targets`` optionally exposes the labels."""

    def __init__(self, xs: Any, labels: list[Any], targets: bool = False) -> None:
        self.xs, self.item_labels, self.reads = xs, labels, 0
        if targets:
            self.targets = labels

    def __len__(self) -> int:
        return len(self.item_labels)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        self.reads += 1
        return self.xs[index], self.item_labels[index]


def test_label_values_become_sorted_classes() -> None:
    labels = ["cat", "ant", "cat", "bee", "ant", "bee"]
    data = LabelledDataset(Pairs(torch.arange(6.0)[:, None], labels), name="animals")
    assert data.class_names == data.class_values == ["ant", "bee", "cat"]
    assert data.counts.tolist() == [2, 2, 2] and data.starts.tolist() == [0, 2, 4] and data.num_classes == 3
    assert data.gather(torch.arange(6)).flatten().tolist() == [1.0, 4.0, 3.0, 5.0, 0.0, 2.0]  # grouped, order kept
    assert repr(data) == "LabelledDataset('animals', classes=3, examples=6)" and len(data) == 6


def test_non_contiguous_int_labels_and_tensor_labels_map_to_0_to_k() -> None:
    labels = [torch.tensor(10), torch.tensor(3), np.int64(7), 3, 10, 7]
    data = LabelledDataset(Pairs(torch.zeros(6, 2), labels))
    assert data.class_values == [3, 7, 10] and data.class_names == ["3", "7", "10"]
    assert data.labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_a_targets_attribute_spares_reading_the_items() -> None:
    source = Pairs(torch.arange(8.0)[:, None], torch.tensor([1, 0] * 4), targets=True)
    data = LabelledDataset(source)
    assert source.reads == 0 and data.counts.tolist() == [4, 4]
    assert data.gather(torch.tensor([[0, 7]])).tolist() == [[[1.0], [6.0]]] and source.reads == 2
    without = Pairs(torch.arange(8.0)[:, None], [1, 0] * 4)
    assert torch.equal(LabelledDataset(without).labels, data.labels) and without.reads == 8


def test_dtypes_are_kept_and_images_become_floats_as_in_class_dataset() -> None:
    images = torch.randint(0, 256, (4, 1, 3, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    labels = [0, 1, 0, 1]
    rows = torch.tensor([[3, 0], [1, 2]])
    for xs in (images, torch.arange(8).view(4, 2), torch.randn(4, 2, 5, dtype=torch.float64)):
        expected = ClassDataset(xs, torch.tensor(labels), ["a", "b"]).gather(rows)
        gathered = LabelledDataset(Pairs(xs, labels)).gather(rows)
        assert gathered.dtype == expected.dtype and torch.equal(gathered, expected)


def test_examples_that_torch_can_read_are_accepted() -> None:
    data = LabelledDataset(Pairs([[1, 2], np.array([3, 4]), (5, 6)], ["a", "a", "b"]))
    assert data.gather(torch.tensor([0, 1, 2])).tolist() == [[1, 2], [3, 4], [5, 6]]


@pytest.mark.parametrize(
    "source, message",
    [
        (Pairs(torch.zeros(3, 2), [0, "a", 1]), r"cannot be sorted into classes: they mix \['int', 'str'\]"),
        (Pairs(torch.zeros(2, 2), [torch.tensor([0, 1]), 1]), "label of item 0 is a Tensor, not a single value"),
        (Pairs(torch.zeros(2, 2), [[0], [1]], targets=True), "label of item 0 is a list, not a single value"),
        (Pairs(torch.zeros(0, 2), []), "is empty"),
        (torch.utils.data.ChainDataset([]), "not a map-style dataset"),
    ],
)
def test_unusable_labels_are_refused_in_one_line(source: Any, message: str) -> None:
    with pytest.raises(DataError, match=message) as error:
        LabelledDataset(source)
    assert "\n" not in str(error.value)


class Items(Dataset):
    """Items returned as given: for datasets whose items are not ``(x, label)`` pairs."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        return self.items[index]


@pytest.mark.parametrize(
    "items, message",
    [
        ([torch.zeros(2), torch.zeros(2)], r"item 0 of the dataset is a Tensor, not an \(x, label\) pair"),
        ([(torch.zeros(2), 0, "extra"), (torch.zeros(2), 1, "")], "item 0 of the dataset is a tuple of 3 values"),
    ],
)
def test_items_that_are_not_pairs_are_refused_in_one_line(items: list[Any], message: str) -> None:
    with pytest.raises(DataError, match=message) as error:
        LabelledDataset(Items(items))
    assert "\n" not in str(error.value)


def test_unreadable_or_inconsistent_examples_name_the_item() -> None:
    xs = [torch.zeros(3), torch.zeros(3), torch.zeros(4), torch.zeros(3).double(), object(), torch.tensor(1.0)]
    data = LabelledDataset(Pairs(xs, [0] * 6, targets=True), name="mixed")
    assert data.gather(torch.tensor([0, 1])).shape == (2, 3)
    cases = [
        (2, r"item 2 of dataset 'mixed' is float32 \[4\] but item 0 is float32 \[3\]: every x needs the same shape"),
        (3, r"item 3 of dataset 'mixed' is float64 \[3\] but item 0 is float32 \[3\]"),
        (4, r"x of item 4 of dataset 'mixed' \(object\) cannot be read by torch.as_tensor: return a tensor"),
        (5, r"x of item 5 of dataset 'mixed' is a single value: give it the shape \[1\]"),
    ]
    for index, message in cases:
        with pytest.raises(DataError, match=message) as error:
            data.gather(torch.tensor([0, index]))
        assert "\n" not in str(error.value)


def test_iterable_datasets_and_datasets_without_length_are_refused() -> None:
    class Stream(IterableDataset):
        def __iter__(self):
            return iter([(torch.zeros(1), 0)])

    class Endless(Dataset):
        def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
            return torch.zeros(1), 0

    with pytest.raises(DataError, match="'Stream' is not a map-style dataset"):
        LabelledDataset(Stream())
    with pytest.raises(DataError, match="'Endless' has no len()"):
        LabelledDataset(Endless())
