"""tieredImageNet (Ren et al. 2018): 608 ImageNet classes under 34 high-level categories, split by
category so that train, val and test concepts differ: 351/97/160 classes (20/6/8 categories), 84x84.

The release (``tiered-imagenet.tar`` of the authors' few-shot-ssl code, mirrored file by file on
Zenodo by learn2learn) holds per split ``<split>_images_png.pkl`` (a list of PNG-encoded images)
and ``<split>_labels.pkl`` (``label_specific``, ``label_general`` per image and their names,
``label_specific_str`` and ``label_general_str``). Files may sit in the dataset folder, in its
``tiered-imagenet/`` subfolder, or under Zenodo's ``tiered-imagenet-`` prefixed names; the tar
archive is extracted safely on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from fastadapt.components import register
from fastadapt.datasets.archives import extract
from fastadapt.datasets.images import Preprocessing, decode_images
from fastadapt.datasets.pickles import load_pickle
from fastadapt.datasets.release import SPLITS, BenchmarkConfig, Decoded, Release, ReleaseDataset, Source
from fastadapt.errors import DataError

ZENODO = "https://zenodo.org/record/7978538/files/tiered-imagenet-"
ARCHIVE = "tiered-imagenet.tar"
LABEL_KEYS = ("label_specific", "label_general", "label_specific_str", "label_general_str")


def _file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / "tiered-imagenet" / name, folder / f"tiered-imagenet-{name}"):
        if candidate.is_file():
            return candidate
    return None


class TieredImageNetRelease(Release):
    name = "tieredimagenet"
    folder = "tieredimagenet"
    title = "tieredImageNet"
    reference = "Ren et al. 2018, Meta-Learning for Semi-Supervised Few-Shot Classification"
    split_source = "the release's own train/val/test files (split by the 34 high-level ImageNet categories)"
    sources = tuple(
        Source(f"tiered-imagenet-{s}_{kind}.pkl", (f"{ZENODO}{s}_{kind}.pkl",))
        for s in SPLITS
        for kind in ("images_png", "labels")
    )
    image_size = 84
    expected_classes: ClassVar[dict[str, int]] = {"train": 351, "val": 97, "test": 160}

    def _files(self, folder: Path) -> dict[str, tuple[Path, Path]] | None:
        files = {}
        for s in SPLITS:
            images, labels = _file(folder, f"{s}_images_png.pkl"), _file(folder, f"{s}_labels.pkl")
            if images is None or labels is None:
                return None
            files[s] = (images, labels)
        return files

    def present(self, folder: Path) -> bool:
        return self._files(folder) is not None or (folder / ARCHIVE).is_file()

    def decode(self, folder: Path, image_size: int, source: Path | None = None) -> Decoded:
        where = source or folder
        files = self._files(where)
        if files is None and (where / ARCHIVE).is_file():
            extract(where / ARCHIVE, folder / "extracted")
            files = self._files(folder / "extracted")
        if files is None:
            raise DataError(
                f"{where} lacks tieredImageNet's <split>_images_png.pkl and <split>_labels.pkl files for {SPLITS}"
            )
        encoded: list[bytes] = []
        labels: list[np.ndarray] = []
        names: list[str] = []
        info: dict[str, list[str]] = {"split": [], "category": []}
        for split, (images_path, labels_path) in files.items():
            meta = load_pickle(labels_path)
            if not isinstance(meta, dict) or any(k not in meta for k in LABEL_KEYS):
                raise DataError(f"{labels_path} is not a tieredImageNet labels file: it needs the keys {LABEL_KEYS}")
            images = load_pickle(images_path)
            specific = np.asarray(meta["label_specific"], dtype=np.int64)
            general = np.asarray(meta["label_general"], dtype=np.int64)
            if len(images) != len(specific) or len(general) != len(specific):
                raise DataError(
                    f"{images_path} has {len(images)} images but {labels_path} labels {len(specific)}: "
                    "the pair does not match"
                )
            class_names = [str(n) for n in meta["label_specific_str"]]
            category_names = [str(n) for n in meta["label_general_str"]]
            if len(specific) and (
                specific.min() < 0 or specific.max() >= len(class_names) or general.max() >= len(category_names)
            ):
                raise DataError(f"{labels_path} has labels outside its lists of class and category names")
            category_of: dict[int, int] = {}
            for c, g in zip(specific.tolist(), general.tolist(), strict=True):
                category_of.setdefault(c, g)
            missing = [class_names[c] for c in range(len(class_names)) if c not in category_of]
            if missing:
                raise DataError(f"{labels_path}: {len(missing)} classes have no images, e.g. {missing[0]}")
            encoded += [image.tobytes() if isinstance(image, np.ndarray) else bytes(image) for image in images]
            labels.append(specific + len(names))
            names += class_names
            info["split"] += [split] * len(class_names)
            info["category"] += [category_names[category_of[c]] for c in range(len(class_names))]
        image_names = [f"{where}: image {i}" for i in range(len(encoded))]
        decoded = decode_images(encoded, Preprocessing(image_size, 3), names=image_names, progress=True)
        return Decoded(decoded, np.concatenate(labels), names, info)


class TieredImageNet(ReleaseDataset):
    """One split of tieredImageNet: 351/97/160 classes of 84x84 RGB images, split by category."""

    release = TieredImageNetRelease()


@register("dataset", "tieredimagenet")
@dataclass
class TieredImageNetConfig(BenchmarkConfig):
    dataset = TieredImageNet
