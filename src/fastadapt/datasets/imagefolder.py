"""Your own images as a few-shot dataset: one folder of images per class.

``root/<class>/<image>``: the classes are split into train/val/test by a seeded shuffle (recorded
in ``split.json`` beside the decoded cache). ``root/{train,val,test}/<class>/<image>``: your own
split. ``root`` may also be a zip or tar archive of either layout; it is extracted safely first.
Every image is converted to the same mode and size (``Preprocessing``), so mixed formats, modes and
sizes are fine; empty class folders and unreadable files are refused by name.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import platformdirs
import torch

from fastadapt.components import option, register
from fastadapt.datasets.archives import extract, is_archive
from fastadapt.datasets.base import ClassDataset
from fastadapt.datasets.cache import load_cache, save_cache
from fastadapt.datasets.imageconfig import ImageDatasetConfig
from fastadapt.datasets.images import Preprocessing, decode_images, is_image_file
from fastadapt.errors import ConfigError, DataError
from fastadapt.storage import atomic_write_text

SPLITS = ("train", "val", "test")


def _default_cache() -> Path:
    return Path(platformdirs.user_cache_dir("fastadapt")) / "decoded" / "imagefolder"


def _class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _user_split(root: Path) -> bool:
    """True if ``root`` holds train/val/test folders (the user's own split) rather than class folders."""
    names = {p.name for p in _class_folders(root)}
    return bool(names) and names <= set(SPLITS) and "train" in names


def class_images(folder: Path, prefix: str = "") -> dict[str, list[Path]]:
    """``{prefix + class name: image files}`` of a folder of class folders; empty ones are refused."""
    found: dict[str, list[Path]] = {}
    empty: list[str] = []
    for class_folder in _class_folders(folder):
        files = sorted(p for p in class_folder.iterdir() if is_image_file(p))
        if files:
            found[prefix + class_folder.name] = files
        else:
            empty.append(str(class_folder))
    if empty:
        raise DataError(f"{len(empty)} class folders hold no images, e.g. {empty[0]}: add images or remove them")
    if not found:
        raise DataError(f"{folder} holds no class folders: put each class's images in a subfolder of its own")
    return found


def _images_by_class(root: Path) -> dict[str, list[Path]]:
    """``{class name: image files}``, class names prefixed by their split folder in a user split."""
    if not _user_split(root):
        return class_images(root)
    found: dict[str, list[Path]] = {}
    for split in SPLITS:
        if (root / split).is_dir():
            found.update(class_images(root / split, prefix=f"{split}/"))
    return found


def split_classes(names: Sequence[str], fractions: Sequence[float], seed: int) -> dict[str, list[str]]:
    """A seeded split of class names into train/val/test by ``fractions`` (each split non-empty)."""
    if len(fractions) != 3 or any(f <= 0 for f in fractions):
        raise ConfigError(f"split_fractions must be three positive numbers (train, val, test), got {list(fractions)}")
    if len(names) < 3:
        raise DataError(f"only {len(names)} classes: a train/val/test split needs at least 3")
    order = sorted(names)
    random.Random(seed).shuffle(order)
    total = sum(fractions)
    n_val = max(1, round(len(order) * fractions[1] / total))
    n_test = max(1, round(len(order) * fractions[2] / total))
    n_train = len(order) - n_val - n_test
    if n_train < 1:
        raise DataError(f"only {len(names)} classes: too few for the split fractions {list(fractions)}")
    return {
        "train": sorted(order[:n_train]),
        "val": sorted(order[n_train:n_train + n_val]),
        "test": sorted(order[n_train + n_val:]),
    }


def _fingerprint(files: dict[str, list[Path]], preprocessing: Preprocessing, root: Path) -> str:
    digest = hashlib.sha256(json.dumps(preprocessing.to_dict(), sort_keys=True).encode())
    digest.update(str(root.resolve()).encode())
    for name, paths in files.items():
        for path in paths:
            stat = path.stat()
            digest.update(f"{name}/{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


class ImageFolder(ClassDataset):
    """A split of your own images (a folder of class folders, or an archive of one)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        image_size: int = 28,
        channels: int = 3,
        invert: bool = False,
        split_fractions: Sequence[float] = (0.6, 0.2, 0.2),
        split_seed: int = 0,
        rotations: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if split not in (*SPLITS, "all"):
            raise ConfigError(f"unknown ImageFolder split {split!r}; choose one of {(*SPLITS, 'all')}")
        preprocessing = Preprocessing(image_size, channels, invert)
        cache = Path(cache_dir) if cache_dir is not None else _default_cache()
        folder = self._folder(Path(root).expanduser(), cache)
        files = _images_by_class(folder)
        key = _fingerprint(files, preprocessing, folder)
        cached = load_cache(cache / f"imagefolder-{key}.pt", "imagefolder")
        full = cached[0] if cached is not None else self._decode(files, preprocessing, cache / f"imagefolder-{key}.pt")
        if _user_split(folder):
            assignment = {s: [n for n in full.class_names if n.startswith(f"{s}/")] for s in SPLITS}
        else:
            assignment = split_classes(full.class_names, split_fractions, split_seed)
            record = {"root": str(folder), "seed": split_seed, "fractions": list(split_fractions), **assignment}
            atomic_write_text(json.dumps(record, indent=1) + "\n", cache / f"imagefolder-{key}-split-{split_seed}.json")
        chosen = full if split == "all" else full.subset(assignment[split], name=f"imagefolder-{split}")
        if len(chosen.class_names) == 0:
            raise DataError(f"{folder} has no {split} classes")
        if rotations:
            chosen = chosen.with_rotations()
        super().__init__(chosen.images, chosen.labels, chosen.class_names, chosen.name)
        self.preprocessing = preprocessing
        self.class_split = assignment

    @staticmethod
    def _folder(root: Path, cache: Path) -> Path:
        if root.is_dir():
            return root
        if is_archive(root):
            stat = root.stat()
            key = hashlib.sha256(f"{root.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
            target = cache / f"extracted-{key}"
            if not target.is_dir():
                extract(root, target)
            inner = _class_folders(target)
            # an archive of one top-level folder holding the classes
            return inner[0] if len(inner) == 1 and not _user_split(target) and _class_folders(inner[0]) else target
        raise DataError(f"no image folder or archive at {root}: give a folder with one subfolder of images per class")

    @staticmethod
    def _decode(files: dict[str, list[Path]], preprocessing: Preprocessing, cache_file: Path) -> ClassDataset:
        images = decode_images([path for paths in files.values() for path in paths], preprocessing, progress=True)
        labels = torch.repeat_interleave(torch.arange(len(files)), torch.tensor([len(p) for p in files.values()]))
        dataset = ClassDataset(torch.from_numpy(images), labels, list(files), name="imagefolder")
        save_cache(cache_file, dataset, {"preprocessing": preprocessing.to_dict()})
        return dataset


@register("dataset", "imagefolder")
@dataclass
class ImageFolderConfig(ImageDatasetConfig):
    """Your own images: a folder (or archive) of class folders at ``path``, its classes split into train/val/test
    by ``split_fractions`` with ``split_seed``."""

    path: str | None = None
    channels: Literal[1, 3] = 3
    invert: bool = False
    rotations: bool = False
    split_seed: int = 0
    split_fractions: list[float] = option([0.6, 0.2, 0.2])

    def validate(self) -> None:
        super().validate()
        if not self.path:
            raise ConfigError("dataset.name=imagefolder needs dataset.path: the folder (or archive) of class folders")
        if len(self.split_fractions) != 3 or not all(f > 0 for f in self.split_fractions):
            raise ConfigError("dataset.split_fractions must be three positive numbers (train, val, test), got "
                              f"{self.split_fractions!r}")

    def classes(self, split: str) -> ImageFolder:
        assert self.path is not None
        return ImageFolder(self.path, split=split, image_size=self.size, channels=self.channels, invert=self.invert,
                           split_fractions=self.split_fractions, split_seed=self.split_seed, rotations=self.rotations)

    def preprocessing(self) -> Preprocessing:
        return Preprocessing(self.size, self.channels, self.invert)
