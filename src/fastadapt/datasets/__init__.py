"""Few-shot datasets: ``ClassDataset`` and one module per dataset."""

from fastadapt.datasets.archives import extract
from fastadapt.datasets.base import ClassDataset
from fastadapt.datasets.glyphs import Glyphs
from fastadapt.datasets.imagefolder import ImageFolder
from fastadapt.datasets.images import Preprocessing, load_image
from fastadapt.datasets.omniglot import Omniglot
from fastadapt.datasets.paths import data_root

__all__ = ["ClassDataset", "Glyphs", "ImageFolder", "Omniglot", "Preprocessing", "load_image", "extract", "data_root"]
