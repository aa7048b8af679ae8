"""``LabelledDataset``: any map-style torch ``Dataset`` of ``(x, label)`` pairs, grouped by class for few-shot tasks."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, IterableDataset

from fastadapt.datasets.base import ClassDataset, as_task_input, describe
from fastadapt.errors import DataError


class LabelledDataset:
    """A map-style dataset (``len(dataset)``, ``dataset[i] -> (x, label)``) seen as classes, as ``FewShotTasks`` needs.

    The labels are read once: from the dataset's ``targets`` or ``labels`` attribute where it has one
    (as torchvision's datasets do), else by reading every item once. Label values of any sortable
    kind (ints, strings) become classes ``0..k-1`` in sorted order: ``class_values[c]`` is class
    ``c``'s label, ``class_names[c]`` its ``str``. Examples are read only when a task needs them, by
    ``gather``. ``x`` is a tensor or anything ``torch.as_tensor`` reads, every one of the same shape
    and dtype; as in ``ClassDataset``, uint8 images ``[C, H, W]`` become float in [0, 1] and anything
    else is kept as it is.
    """

    def __init__(self, dataset: Dataset[Any], name: str | None = None) -> None:
        name = type(dataset).__name__ if name is None else name
        values = read_labels(dataset, name)
        unique: set[Any] = set(values)  # whether these labels sort is found out by sorting them
        try:
            classes = sorted(unique)
        except TypeError:
            kinds = sorted({type(v).__name__ for v in values})
            raise DataError(f"the labels of dataset {name!r} cannot be sorted into classes: they mix {kinds}") from None
        position = {value: index for index, value in enumerate(classes)}
        codes = torch.tensor([position[value] for value in values], dtype=torch.int64)
        # The item indices grouped by class: ClassDataset's counts, starts and checks, without the examples.
        self._items = ClassDataset(torch.arange(len(values))[:, None], codes, [str(c) for c in classes], name)
        self.dataset = dataset
        self.name = name
        self.class_values = classes
        self.class_names, self.labels = self._items.class_names, self._items.labels
        self.counts, self.starts = self._items.counts, self._items.starts
        self._first: tuple[int, torch.dtype, torch.Size] | None = None  # the first example read: the kind of all

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"LabelledDataset({self.name!r}, classes={self.num_classes}, examples={len(self)})"

    def gather(self, rows: Tensor, device: torch.device | None = None) -> Tensor:
        """The examples at ``rows`` (any shape) as ``[*rows.shape, *example_shape]`` on ``device``.

        Only the items at ``rows`` are read: a lazily loaded dataset stays lazy.
        """
        indices = self._items.examples[rows.reshape(-1), 0].tolist()
        return as_task_input(torch.stack([self._example(index) for index in indices]), rows.shape, device)

    def _example(self, index: int) -> Tensor:
        """Item ``index``'s ``x`` as a tensor, checked against the first example read (one shape and dtype for all)."""
        x = item_pair(self.dataset, index)[0]
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError):
            raise DataError(
                f"x of item {index} of dataset {self.name!r} ({type(x).__name__}) cannot be read by torch.as_tensor: "
                "return a tensor (e.g. with a transform such as torchvision's ToTensor())"
            ) from None
        if x.dim() == 0:
            raise DataError(f"x of item {index} of dataset {self.name!r} is a single value: give it the shape [1]")
        if self._first is None:
            self._first = (index, x.dtype, x.shape)
        first, dtype, shape = self._first
        if x.dtype != dtype or x.shape != shape:
            raise DataError(
                f"item {index} of dataset {self.name!r} is {describe(x.dtype, x.shape)} but item {first} is "
                f"{describe(dtype, shape)}: every x needs the same shape and dtype (pad, crop or cast them)"
            )
        return x


def item_pair(dataset: Dataset[Any], index: int) -> tuple[Any, Any]:
    """``dataset[index]`` checked to be an ``(x, label)`` pair."""
    item = dataset[index]
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        kind = type(item).__name__ + (f" of {len(item)} values" if isinstance(item, (tuple, list)) else "")
        raise DataError(
            f"item {index} of the dataset is a {kind}, not an (x, label) pair: make __getitem__ return (x, label)"
        )
    return item[0], item[1]


def read_labels(dataset: Dataset[Any], name: str) -> list[Hashable]:
    """Each item's label, from a ``targets`` or ``labels`` attribute of the right length, else from every item once."""
    if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__getitem__"):
        raise DataError(
            f"{name!r} is not a map-style dataset: few-shot tasks need len(dataset) and dataset[i] -> (x, label)"
        )
    try:
        size = len(dataset)  # type: ignore[arg-type]  # torch's Dataset declares no __len__: hence the check
    except TypeError:
        raise DataError(f"dataset {name!r} has no len(): few-shot tasks need a map-style dataset") from None
    if size == 0:
        raise DataError(f"dataset {name!r} is empty: it has no items")
    for attribute in ("targets", "labels"):
        stored: Any = getattr(dataset, attribute, None)
        if hasattr(stored, "__len__") and len(stored) == size:
            values = stored.tolist() if hasattr(stored, "tolist") else list(stored)
            return [plain_label(value, index) for index, value in enumerate(values)]
    return [plain_label(item_pair(dataset, index)[1], index) for index in range(size)]


def plain_label(value: Any, index: int) -> Hashable:
    """A label as a plain value (0-d tensors and numpy scalars unwrapped); refuses what cannot name a class."""
    if getattr(value, "ndim", None) == 0:
        value = value.item()
    if isinstance(value, (Tensor, tuple)) or not isinstance(value, Hashable):
        raise DataError(
            f"the label of item {index} is a {type(value).__name__}, not a single value: labels must be ints, "
            "strings or 0-d tensors"
        )
    return value
