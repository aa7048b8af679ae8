"""``ClassDataset``: a few-shot dataset as one tensor of examples plus integer class labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor

from fastadapt.datasets.images import as_model_input, pixel_mean
from fastadapt.errors import ConfigError, DataError


def is_image_batch(examples: Tensor) -> bool:
    """Whether ``examples [n, ...]`` are images: uint8 ``[n, C, H, W]``, the one kind converted for models."""
    return examples.dtype == torch.uint8 and examples.dim() == 4


def as_task_input(examples: Tensor, shape: Sequence[int], device: torch.device | None = None) -> Tensor:
    """Gathered examples ``[m, ...]`` as a task holds them, reshaped to ``[*shape, ...]`` on ``device``.

    Images move as uint8 (a quarter of the bytes) and become float in [0, 1] there; anything else
    is kept as it is, dtype preserved.
    """
    if device is not None:
        examples = examples.to(device, non_blocking=True)
    if is_image_batch(examples):
        examples = as_model_input(examples)
    return examples.reshape(*shape, *examples.shape[1:])


def describe(dtype: torch.dtype, shape: Sequence[int]) -> str:
    """An example's kind in words, e.g. ``float32 [16]``, for messages."""
    return f"{str(dtype).removeprefix('torch.')} {list(shape)}"


class ClassDataset:
    """Examples ``[n, ...]`` (any dtype, one shape) with labels ``0..num_classes-1`` and a name per class.

    The examples may be uint8 images ``[n, C, H, W]`` (memory-mappable; a task gets them as float in
    [0, 1]), float features ``[n, d]``, int64 token ids ``[n, L]``, signals ``[n, C, T]``...: a task
    gets anything but images as it is, dtype preserved. They are kept sorted by class, so that a
    class is a contiguous range of rows and sampling a task is index arithmetic (see
    ``fastadapt.FewShotTasks``). ``images``, ``image_shape``, ``pixel_mean`` and ``with_rotations``
    are for images only; ``examples`` and ``example_shape`` work for any data.
    """

    def __init__(self, examples: Tensor, labels: Tensor, class_names: Sequence[str], name: str = "") -> None:
        if not isinstance(examples, Tensor) or examples.dim() < 2:
            raise DataError(
                "ClassDataset examples must be a tensor [n, ...] with one row per example (e.g. uint8 images "
                f"[n, C, H, W] or features [n, d]), got {type(examples).__name__} of shape "
                f"{tuple(getattr(examples, 'shape', ()))}: convert arrays with torch.as_tensor, give single values "
                "the shape [n, 1]"
            )
        labels = torch.as_tensor(labels, dtype=torch.int64)
        if labels.shape != (examples.shape[0],):
            raise DataError(
                f"ClassDataset needs one label per example: {examples.shape[0]} examples, "
                f"labels of shape {tuple(labels.shape)}"
            )
        if len(class_names) == 0 or examples.shape[0] == 0:
            raise DataError(f"ClassDataset {name!r} is empty: it has no classes or no examples")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(class_names)):
            raise DataError(f"ClassDataset labels must lie in 0..{len(class_names) - 1} (one per class name)")
        if len(set(class_names)) != len(class_names):
            raise DataError(f"ClassDataset {name!r} has duplicate class names")
        if labels.numel() > 1 and bool((labels[1:] < labels[:-1]).any()):
            order = torch.argsort(labels, stable=True)
            examples, labels = examples[order], labels[order]
        self.examples = examples
        self.labels = labels
        self.class_names = list(class_names)
        self.name = name
        self.counts = torch.bincount(labels, minlength=len(self.class_names))
        self.starts = torch.cumsum(self.counts, 0) - self.counts
        empty = (self.counts == 0).nonzero().flatten().tolist()
        if empty:
            names = [self.class_names[i] for i in empty[:5]]
            raise DataError(f"ClassDataset {name!r} has classes with no examples: {names}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def example_shape(self) -> tuple[int, ...]:
        """The shape of every example, e.g. ``(channels, height, width)`` or ``(features,)``."""
        return tuple(self.examples.shape[1:])

    @property
    def is_image(self) -> bool:
        """Whether the examples are uint8 images ``[n, C, H, W]``."""
        return is_image_batch(self.examples)

    @property
    def images(self) -> Tensor:
        """The uint8 images ``[n, C, H, W]`` (images only; ``examples`` holds any data)."""
        self._require_images("images", "use dataset.examples")
        return self.examples

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of every image (images only; ``example_shape`` is for any data)."""
        self._require_images("image_shape", "use dataset.example_shape")
        channels, height, width = self.examples.shape[1:]
        return channels, height, width

    def __len__(self) -> int:
        return self.examples.shape[0]

    @property
    def pixel_mean(self) -> float:
        """Mean pixel value in [0, 1]: how bright the data is, to recognise inverted images later."""
        self._require_images("pixel_mean", "brightness is defined for images alone")
        return pixel_mean(self.examples)

    def _require_images(self, what: str, fix: str) -> None:
        """Refuse an image-only operation on other data with a one-line ``DataError``."""
        if not self.is_image:
            raise DataError(
                f"dataset.{what} is for uint8 images [n, C, H, W] only, but ClassDataset {self.name!r} holds "
                f"{describe(self.examples.dtype, self.example_shape)} examples: {fix}"
            )

    def __repr__(self) -> str:
        if self.is_image:
            shape = "x".join(str(size) for size in self.example_shape)
            return f"ClassDataset({self.name!r}, classes={self.num_classes}, images={len(self)}, shape={shape})"
        example = describe(self.examples.dtype, self.example_shape)
        return f"ClassDataset({self.name!r}, classes={self.num_classes}, examples={len(self)}, example={example})"

    def gather(self, rows: Tensor, device: torch.device | None = None) -> Tensor:
        """The examples at ``rows`` (any shape) as tasks hold them: ``[*rows.shape, *example_shape]`` on ``device``."""
        return as_task_input(self.examples[rows.reshape(-1)], rows.shape, device)

    def subset(self, classes: Sequence[int] | Sequence[str], name: str | None = None) -> ClassDataset:
        """The dataset restricted to some classes (by index or by name), relabelled in the given order."""
        if classes and isinstance(classes[0], str):
            names = cast(Sequence[str], classes)  # by name (a class that is not a name is refused as missing)
            position = {n: i for i, n in enumerate(self.class_names)}
            missing = [c for c in names if c not in position]
            if missing:
                raise DataError(f"{len(missing)} classes are not in dataset {self.name!r}, e.g. {missing[:3]}")
            classes = [position[c] for c in names]
        index = torch.as_tensor(list(classes), dtype=torch.int64)
        rows = torch.cat(
            [torch.arange(int(self.starts[c]), int(self.starts[c] + self.counts[c])) for c in index.tolist()]
        )
        labels = torch.repeat_interleave(torch.arange(len(index)), self.counts[index])
        names = [self.class_names[c] for c in index.tolist()]
        return ClassDataset(self.examples[rows], labels, names, name or self.name)

    def with_rotations(self, angles: Sequence[int] = (0, 90, 180, 270)) -> ClassDataset:
        """Each class rotated by each angle becomes a new class, as in the Omniglot papers (images only).

        Class ``c`` rotated by ``a`` degrees is named ``"<c>/rotAAA"`` (the published split files'
        names) and its label is ``c * len(angles) + k`` for the k-th angle.
        """
        self._require_images("with_rotations", "rotations are defined for images alone")
        bad = [a for a in angles if a % 90 != 0]
        if bad or not angles:
            raise ValueError(f"rotations must be multiples of 90 degrees, got {list(angles)}")
        n, c, h, w = self.images.shape
        if h != w and any((a // 90) % 2 for a in angles):
            raise ConfigError(f"rotating by 90 or 270 degrees needs square images, these are {h}x{w}")
        rotated = torch.stack([torch.rot90(self.images, (a // 90) % 4, dims=(2, 3)) for a in angles], dim=1)
        labels = self.labels[:, None] * len(angles) + torch.arange(len(angles))
        names = [f"{name}/rot{a % 360:03d}" for name in self.class_names for a in angles]
        return ClassDataset(rotated.reshape(n * len(angles), c, h, w), labels.reshape(-1), names, self.name)
