"""Few-shot datasets: ``ClassDataset`` and one module per dataset."""

from fastadapt.datasets.base import ClassDataset
from fastadapt.datasets.glyphs import Glyphs
from fastadapt.datasets.omniglot import Omniglot
from fastadapt.datasets.paths import data_root

__all__ = ["ClassDataset", "Glyphs", "Omniglot", "data_root"]
