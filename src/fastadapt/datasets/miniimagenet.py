"""miniImageNet (Vinyals et al. 2016) with the split of Ravi & Larochelle (2017): 64/16/20 ImageNet
classes, 600 images each, 84x84 RGB.

There is no official download: the split is defined by three CSV files (``filename,label``, shipped
with fastadapt exactly as published) that pick 600 images of each class from ILSVRC-2012. Three
forms of the data are read:

- the pickles that learn2learn mirrors on Zenodo (``mini-imagenet-cache-{train,val,test}.pkl``:
  ``image_data`` ``[n, 84, 84, 3]`` uint8 and ``class_dict`` ``{wnid: [rows]}``); ``download=True``
  fetches these;
- Ravi's release: a flat ``images/`` folder of 84x84 JPEGs named as in the CSVs;
- your own ImageNet training folder (``<wnid>/<wnid>_<n>.JPEG``): the CSVs' image number ``k`` is the
  k-th file of its class in the order of ``<n>``, the rule of the common generator script.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from fastadapt.components import register
from fastadapt.datasets.images import Preprocessing, decode_images, is_image_file
from fastadapt.datasets.pickles import load_pickle
from fastadapt.datasets.release import SPLITS, BenchmarkConfig, Decoded, Release, ReleaseDataset, Source
from fastadapt.errors import DataError

SPLIT_DIR = Path(__file__).parent / "splits" / "miniimagenet"
ZENODO = "https://zenodo.org/record/7978538/files/"
DROPBOX = {
    "train": "https://www.dropbox.com/s/9g8c6w345s2ek03/mini-imagenet-cache-train.pkl?dl=1",
    "val": "https://www.dropbox.com/s/ip1b7se3gij3r1b/mini-imagenet-cache-validation.pkl?dl=1",
    "test": "https://www.dropbox.com/s/ye9jeb5tyz0x01b/mini-imagenet-cache-test.pkl?dl=1",
}
PICKLE_NAMES = {
    "train": ("mini-imagenet-cache-train.pkl",),
    "val": ("mini-imagenet-cache-val.pkl", "mini-imagenet-cache-validation.pkl"),
    "test": ("mini-imagenet-cache-test.pkl",),
}
IMAGES_PER_CLASS = 600


def read_split(split: str, split_dir: Path | None = None) -> list[tuple[str, str]]:
    """``(filename, wnid)`` rows of one split's CSV (the shipped Ravi & Larochelle files by default)."""
    folder = split_dir or SPLIT_DIR
    plain, packed = folder / f"{split}.csv", folder / f"{split}.csv.gz"
    if plain.is_file():
        text = plain.read_text()
    elif packed.is_file():
        text = gzip.decompress(packed.read_bytes()).decode()
    else:
        raise DataError(f"no {split}.csv split file in {folder}")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or rows[0] != ["filename", "label"]:
        raise DataError(f"{folder}/{split}.csv is not a miniImageNet split file: its header should be 'filename,label'")
    return [(r[0], r[1]) for r in rows[1:] if r]


def _by_class(rows: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    classes: dict[str, list[str]] = {}
    for filename, wnid in rows:
        classes.setdefault(wnid, []).append(filename)
    return classes


def _image_number(filename: str) -> int:
    """``n0153282900000005.jpg`` -> 5: the 1-based position of the image among its class's files."""
    return int(Path(filename).stem[9:])


def _imagenet_number(path: Path) -> int:
    try:
        return int(path.stem.rsplit("_", 1)[1])
    except (IndexError, ValueError):
        raise DataError(f"{path} is not named like an ImageNet training image (<wnid>_<number>.JPEG)") from None


class MiniImageNetRelease(Release):
    name = "miniimagenet"
    folder = "miniimagenet"
    title = "miniImageNet"
    reference = (
        "Vinyals et al. 2016, Matching Networks; "
        "split of Ravi & Larochelle 2017, Optimization as a Model for Few-Shot Learning"
    )
    split_source = (
        "Ravi & Larochelle's train/val/test.csv "
        "(shipped with fastadapt, as published with the Prototypical Networks code)"
    )
    sources = tuple(
        Source(PICKLE_NAMES[s][0], (ZENODO + PICKLE_NAMES[s][-1], DROPBOX[s])) for s in SPLITS
    )
    image_size = 84
    expected_classes: ClassVar[dict[str, int]] = {"train": 64, "val": 16, "test": 20}
    split_dir: ClassVar[Path | None] = None  # another folder of train/val/test.csv (your own split)

    def _pickles(self, folder: Path) -> dict[str, Path] | None:
        found = {s: next((folder / n for n in PICKLE_NAMES[s] if (folder / n).is_file()), None) for s in SPLITS}
        pickles = {s: path for s, path in found.items() if path is not None}
        return pickles if len(pickles) == len(found) else None

    def present(self, folder: Path) -> bool:
        return self._pickles(folder) is not None or (folder / "images").is_dir()

    def decode(self, folder: Path, image_size: int, source: Path | None = None) -> Decoded:
        where = source or folder
        splits = {s: _by_class(read_split(s, self.split_dir)) for s in SPLITS}
        pickles = self._pickles(where)
        if pickles is not None:
            return self._from_pickles(pickles, splits, image_size)
        if (where / "images").is_dir():
            return self._from_files(
                splits, image_size, lambda wnid, names: [where / "images" / n for n in names], where
            )
        if source is not None and any(p.is_dir() and p.name.startswith("n") for p in source.iterdir()):
            return self._from_files(
                splits, image_size, lambda wnid, names: self._imagenet_files(source, wnid, names), source
            )
        raise DataError(
            f"{where} holds neither the miniImageNet pickles ({', '.join(n[0] for n in PICKLE_NAMES.values())}), "
            "an images/ folder of Ravi's release, nor an ImageNet training folder (<wnid>/<wnid>_<n>.JPEG)"
        )

    @staticmethod
    def _imagenet_files(root: Path, wnid: str, names: Sequence[str]) -> list[Path]:
        folder = root / wnid
        if not folder.is_dir():
            raise DataError(f"ImageNet class {wnid} is missing from {root}: miniImageNet needs its images")
        files = sorted((p for p in folder.iterdir() if is_image_file(p)), key=_imagenet_number)
        numbers = [_image_number(n) for n in names]
        if max(numbers) > len(files):
            raise DataError(
                f"{folder} has {len(files)} images, but the split uses image number {max(numbers)}: "
                "is this ILSVRC-2012 train?"
            )
        return [files[k - 1] for k in numbers]

    def _from_files(
        self,
        splits: dict[str, dict[str, list[str]]],
        size: int,
        files_of: Callable[[str, Sequence[str]], list[Path]],
        where: Path,
    ) -> Decoded:
        paths: list[Path] = []
        labels: list[int] = []
        names: list[str] = []
        split_of: list[str] = []
        for split, classes in splits.items():
            for wnid, filenames in classes.items():
                found = files_of(wnid, filenames)
                missing = [p for p in found if not p.is_file()]
                if missing:
                    raise DataError(
                        f"{len(missing)} images of class {wnid} are missing from {where}, e.g. {missing[0].name}"
                    )
                paths += found
                labels += [len(names)] * len(found)
                names.append(wnid)
                split_of.append(split)
        images = decode_images(paths, Preprocessing(size, 3), progress=True)
        return Decoded(images, np.asarray(labels, dtype=np.int64), names, {"split": split_of})

    def _from_pickles(self, pickles: dict[str, Path], splits: dict[str, dict[str, list[str]]], size: int) -> Decoded:
        parts: list[np.ndarray] = []
        labels: list[int] = []
        names: list[str] = []
        split_of: list[str] = []
        for split, path in pickles.items():
            blob = load_pickle(path)
            if (
                not isinstance(blob, dict)
                or not isinstance(blob.get("image_data"), np.ndarray)
                or not isinstance(blob.get("class_dict"), dict)
            ):
                raise DataError(
                    f"{path} is not a miniImageNet pickle: it should hold 'image_data' (an array) and 'class_dict'"
                )
            data = blob["image_data"]
            if data.dtype != np.uint8 or data.ndim != 4 or data.shape[3] != 3:
                raise DataError(
                    f"{path}: image_data should be uint8 [n, height, width, 3], got {data.dtype} {data.shape}"
                )
            expected = set(splits[split])
            if set(blob["class_dict"]) != expected:
                wrong = sorted(set(blob["class_dict"]) ^ expected)
                raise DataError(
                    f"{path}: its classes are not the {split} classes of the split "
                    f"({len(wrong)} differ, e.g. {wrong[0]})"
                )
            for wnid in splits[split]:  # the split file's class order
                rows = np.asarray(blob["class_dict"][wnid], dtype=np.int64)
                expected_rows = len(splits[split][wnid])
                if len(rows) != expected_rows or rows.min(initial=0) < 0 or rows.max(initial=0) >= len(data):
                    raise DataError(
                        f"{path}: class {wnid} has {len(rows)} images (expected {expected_rows}) or rows out of range"
                    )
                parts.append(data[rows])
                labels += [len(names)] * len(rows)
                names.append(wnid)
                split_of.append(split)
        stacked = np.concatenate(parts)
        if stacked.shape[1:3] == (size, size):
            images = np.ascontiguousarray(stacked.transpose(0, 3, 1, 2))
        else:
            images = decode_images(list(stacked), Preprocessing(size, 3), progress=True)
        return Decoded(images, np.asarray(labels, dtype=np.int64), names, {"split": split_of})


class MiniImageNet(ReleaseDataset):
    """One split of miniImageNet (Ravi & Larochelle): 64/16/20 classes of 600 84x84 RGB images."""

    release = MiniImageNetRelease()


@register("dataset", "miniimagenet")
@dataclass
class MiniImageNetConfig(BenchmarkConfig):
    dataset = MiniImageNet
