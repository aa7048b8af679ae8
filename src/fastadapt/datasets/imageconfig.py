"""The config every built-in image dataset shares: its images' side, filled in with the dataset's own when not given."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from fastadapt.components import ClassDatasetConfig, option
from fastadapt.datasets.images import MIN_IMAGE_SIZE


@dataclass
class ImageDatasetConfig(ClassDatasetConfig):
    """An image dataset's config: ``image_size`` (``None``: the dataset's own, filled in when loaded)."""

    default_size: ClassVar[int] = 28
    image_size: int | None = option(None, minimum=MIN_IMAGE_SIZE)

    def validate(self) -> None:
        if self.image_size is None:
            self.image_size = self.default_size

    @property
    def size(self) -> int:
        """The image side, known once the config is loaded."""
        assert self.image_size is not None, "validate() fills in image_size"
        return self.image_size
