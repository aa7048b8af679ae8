"""Few-shot datasets: ``ClassDataset``, ``LabelledDataset`` (any torch ``Dataset``), the standard benchmarks, your own
images, and their caches."""

from fastadapt.datasets.archives import extract
from fastadapt.datasets.base import ClassDataset
from fastadapt.datasets.cifar import CIFARFS, FC100
from fastadapt.datasets.cub import CUB
from fastadapt.datasets.glyphs import Glyphs
from fastadapt.datasets.imagefolder import ImageFolder
from fastadapt.datasets.images import Preprocessing, decode_images, load_image
from fastadapt.datasets.labelled import LabelledDataset
from fastadapt.datasets.miniimagenet import MiniImageNet
from fastadapt.datasets.omniglot import Omniglot
from fastadapt.datasets.paths import data_root
from fastadapt.datasets.pickles import load_pickle
from fastadapt.datasets.tieredimagenet import TieredImageNet

__all__ = [
    "CIFARFS", "CUB", "ClassDataset", "FC100", "Glyphs", "ImageFolder", "LabelledDataset", "MiniImageNet", "Omniglot",
    "Preprocessing", "TieredImageNet", "data_root", "decode_images", "extract", "load_image", "load_pickle",
]
