"""``ClassDataset``: a few-shot image dataset as one uint8 tensor plus integer class labels."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from fastadapt.datasets.images import pixel_mean
from fastadapt.errors import ConfigError, DataError


class ClassDataset:
    """Images ``[n, C, H, W]`` (uint8) with labels ``0..num_classes-1`` and a name per class.

    The images are kept sorted by class, so that a class is a contiguous range of rows and sampling
    a task is index arithmetic (see ``fastadapt.FewShotTasks``). The tensor may be memory-mapped.
    """

    def __init__(self, images: Tensor, labels: Tensor, class_names: Sequence[str], name: str = "") -> None:
        if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
            raise DataError(
                "ClassDataset images must be a uint8 tensor of shape [n, channels, height, width], got "
                f"{getattr(images, 'dtype', type(images).__name__)} of shape {tuple(getattr(images, 'shape', ()))}"
            )
        labels = torch.as_tensor(labels, dtype=torch.int64)
        if labels.shape != (images.shape[0],):
            raise DataError(f"ClassDataset needs one label per image: {images.shape[0]} images, labels of shape {tuple(labels.shape)}")
        if len(class_names) == 0 or images.shape[0] == 0:
            raise DataError(f"ClassDataset {name!r} is empty: it has no classes or no images")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(class_names)):
            raise DataError(f"ClassDataset labels must lie in 0..{len(class_names) - 1} (one per class name)")
        if len(set(class_names)) != len(class_names):
            raise DataError(f"ClassDataset {name!r} has duplicate class names")
        if labels.numel() > 1 and bool((labels[1:] < labels[:-1]).any()):
            order = torch.argsort(labels, stable=True)
            images, labels = images[order], labels[order]
        self.images = images
        self.labels = labels
        self.class_names = list(class_names)
        self.name = name
        self.counts = torch.bincount(labels, minlength=len(self.class_names))
        self.starts = torch.cumsum(self.counts, 0) - self.counts
        empty = (self.counts == 0).nonzero().flatten().tolist()
        if empty:
            raise DataError(f"ClassDataset {name!r} has classes with no images: {[self.class_names[i] for i in empty[:5]]}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of every image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def pixel_mean(self) -> float:
        """Mean pixel value in [0, 1]: how bright the data is, to recognise inverted images later."""
        return pixel_mean(self.images)

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        return f"ClassDataset({self.name!r}, classes={self.num_classes}, images={len(self)}, shape={c}x{h}x{w})"

    def subset(self, classes: Sequence[int] | Sequence[str], name: str | None = None) -> ClassDataset:
        """The dataset restricted to some classes (by index or by name), relabelled in the given order."""
        if classes and isinstance(classes[0], str):
            position = {n: i for i, n in enumerate(self.class_names)}
            missing = [c for c in classes if c not in position]
            if missing:
                raise DataError(f"{len(missing)} classes are not in dataset {self.name!r}, e.g. {missing[:3]}")
            classes = [position[c] for c in classes]  # type: ignore[index]
        index = torch.as_tensor(list(classes), dtype=torch.int64)
        rows = torch.cat([torch.arange(int(self.starts[c]), int(self.starts[c] + self.counts[c])) for c in index.tolist()])
        labels = torch.repeat_interleave(torch.arange(len(index)), self.counts[index])
        return ClassDataset(self.images[rows], labels, [self.class_names[c] for c in index.tolist()], name or self.name)

    def with_rotations(self, angles: Sequence[int] = (0, 90, 180, 270)) -> ClassDataset:
        """Each class rotated by each angle becomes a new class, as in the Omniglot papers.

        Class ``c`` rotated by ``a`` degrees is named ``"<c>/rotAAA"`` (the published split files'
        names) and its label is ``c * len(angles) + k`` for the k-th angle.
        """
        bad = [a for a in angles if a % 90 != 0]
        if bad or not angles:
            raise ConfigError(f"rotations must be multiples of 90 degrees, got {list(angles)}")
        n, c, h, w = self.images.shape
        if h != w and any((a // 90) % 2 for a in angles):
            raise ConfigError(f"rotating by 90 or 270 degrees needs square images, these are {h}x{w}")
        rotated = torch.stack([torch.rot90(self.images, (a // 90) % 4, dims=(2, 3)) for a in angles], dim=1)
        labels = self.labels[:, None] * len(angles) + torch.arange(len(angles))
        names = [f"{name}/rot{a % 360:03d}" for name in self.class_names for a in angles]
        return ClassDataset(rotated.reshape(n * len(angles), c, h, w), labels.reshape(-1), names, self.name)
