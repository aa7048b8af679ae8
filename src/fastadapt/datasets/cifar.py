"""CIFAR-FS (Bertinetto et al. 2019) and FC100 (Oreshkin et al. 2018): two few-shot splits of the
100 CIFAR-100 classes (600 32x32 RGB images each), built from the official python archive.

CIFAR-FS splits the classes at random, 64/16/20: the lists below are those of the R2D2 split files
(``cifar100/splits/bertinetto/{train,val,test}.txt``). FC100 splits by the 20 superclasses, 12/4/4
(60/20/20 classes), so that test concepts are far from training ones: superclasses 1-6, 9, 10, 15,
17-19 train, 8, 11, 13, 16 val, 0, 7, 12, 14 test, as in TADAM. Both read one decoded cache of
CIFAR-100 (its train and test images together).
"""

from __future__ import annotations

import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fastadapt.components import register
from fastadapt.datasets.archives import ARCHIVE_ERRORS
from fastadapt.datasets.images import Preprocessing, decode_images
from fastadapt.datasets.pickles import load_pickle
from fastadapt.datasets.release import BenchmarkConfig, Decoded, Release, ReleaseDataset, Source
from fastadapt.errors import DataError

ARCHIVE = Source(
    "cifar-100-python.tar.gz",
    ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
    md5="eb9058c3a382ffc7106e4002c42a8d85",
)
MEMBERS = ("train", "test", "meta")
MAX_MEMBER_BYTES = 200 << 20  # the train pickle is ~155 MB

CIFAR_FS: dict[str, tuple[str, ...]] = {
    "val": (
        "beaver", "otter", "flatfish", "shark", "lamp", "television", "beetle", "butterfly", "sea", "camel", "cattle",
        "crab", "crocodile", "maple_tree", "motorcycle", "tractor",
    ),
    "test": (
        "whale", "poppy", "rose", "sweet_pepper", "telephone", "bed", "table", "wardrobe", "leopard", "plain",
        "chimpanzee", "fox", "snail", "worm", "baby", "man", "woman", "bicycle", "pickup_truck", "rocket",
    ),
}
FC100_SUPERCLASSES: dict[str, tuple[str, ...]] = {
    "val": ("large_carnivores", "large_omnivores_and_herbivores", "non-insect_invertebrates", "small_mammals"),
    "test": ("aquatic_mammals", "insects", "medium_mammals", "people"),
}


def _read_members(folder: Path) -> dict[str, Any]:
    """The train, test and meta pickles, from the extracted ``cifar-100-python/`` folder or the archive."""
    extracted = folder / "cifar-100-python"
    if extracted.is_dir():
        missing = [m for m in MEMBERS if not (extracted / m).is_file()]
        if missing:
            raise DataError(f"{extracted} lacks {missing}: it is not a complete CIFAR-100 python release")
        return {m: load_pickle(extracted / m) for m in MEMBERS}
    archive = folder / ARCHIVE.filename
    blobs: dict[str, Any] = {}
    try:
        with tarfile.open(archive) as handle:
            for member in handle:
                name = member.name.removeprefix("./")
                if member.isfile() and name in {f"cifar-100-python/{m}" for m in MEMBERS}:
                    if member.size > MAX_MEMBER_BYTES:
                        raise DataError(f"{archive}: member {name} is {member.size} bytes, too large for CIFAR-100")
                    stream = handle.extractfile(member)
                    if stream is not None:  # always, for a regular file
                        blobs[name.split("/")[1]] = load_pickle(stream.read(), name=f"{archive}:{name}")
    except ARCHIVE_ERRORS as error:
        raise DataError(
            f"{archive} is not a readable tar.gz archive ({error}): it is corrupt or truncated; "
            "delete it and download it again"
        ) from None
    missing = [m for m in MEMBERS if m not in blobs]
    if missing:
        raise DataError(
            f"{archive} lacks cifar-100-python/{missing[0]}: "
            "it is not the CIFAR-100 python release (or it is truncated)"
        )
    return blobs


def _field(blob: Any, key: str, where: str) -> Any:
    if isinstance(blob, dict):
        for k in (key, key.encode()):
            if k in blob:
                return blob[k]
    raise DataError(f"{where} has no {key!r}: it is not a CIFAR-100 python pickle")


def _names(values: Sequence[Any]) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


class Cifar100Release(Release):
    """CIFAR-100 decoded once; a subclass names its val and test classes (or superclasses), the rest train."""

    folder = "cifar100"
    cache_name = "cifar100"
    sources = (ARCHIVE,)
    image_size = 32
    split_lists: ClassVar[dict[str, tuple[str, ...]]]
    split_by_superclass: ClassVar[bool] = False

    def class_splits(self, class_names: Sequence[str], class_info: dict[str, list[str]]) -> list[str]:
        keys = class_info["superclass"] if self.split_by_superclass else class_names
        return [next((s for s, names in self.split_lists.items() if key in names), "train") for key in keys]

    def present(self, folder: Path) -> bool:
        return (folder / ARCHIVE.filename).is_file() or (folder / "cifar-100-python").is_dir()

    def decode(self, folder: Path, image_size: int, source: Path | None = None) -> Decoded:
        where = source or folder
        blobs = _read_members(where)
        fine_names = _names(_field(blobs["meta"], "fine_label_names", f"{where}: meta"))
        coarse_names = _names(_field(blobs["meta"], "coarse_label_names", f"{where}: meta"))
        data, fine, coarse = [], [], []
        for part in ("train", "test"):
            array = np.asarray(_field(blobs[part], "data", f"{where}: {part}"))
            if array.dtype != np.uint8 or array.ndim != 2 or array.shape[1] != 3 * 32 * 32:
                raise DataError(
                    f"{where}: {part} data should be uint8 rows of 3072 values, got {array.dtype} {array.shape}"
                )
            data.append(array.reshape(-1, 3, 32, 32))
            fine.append(np.asarray(_field(blobs[part], "fine_labels", f"{where}: {part}"), dtype=np.int64))
            coarse.append(np.asarray(_field(blobs[part], "coarse_labels", f"{where}: {part}"), dtype=np.int64))
        images, labels, superlabels = np.concatenate(data), np.concatenate(fine), np.concatenate(coarse)
        if len(labels) != len(images) or len(superlabels) != len(images):
            raise DataError(f"{where}: the numbers of images and labels differ")
        if labels.min() < 0 or labels.max() >= len(fine_names) or superlabels.max() >= len(coarse_names):
            raise DataError(f"{where}: labels outside the class name lists of meta")
        superclass: dict[int, int] = {}
        for f, c in zip(labels.tolist(), superlabels.tolist(), strict=True):
            superclass.setdefault(f, c)
        if len(superclass) != len(fine_names):
            raise DataError(f"{where}: {len(fine_names) - len(superclass)} CIFAR-100 classes have no images")
        if image_size != 32:
            images = decode_images(list(images.transpose(0, 2, 3, 1)), Preprocessing(image_size, 3), progress=True)
        superclass_names = [coarse_names[superclass[i]] for i in range(len(fine_names))]
        return Decoded(np.ascontiguousarray(images), labels, fine_names, {"superclass": superclass_names})


class CifarFSRelease(Cifar100Release):
    name = "cifarfs"
    title = "CIFAR-FS"
    reference = "Bertinetto et al. 2019, Meta-learning with differentiable closed-form solvers"
    split_source = "the R2D2 split files (cifar100/splits/bertinetto), 64/16/20 CIFAR-100 classes"
    expected_classes: ClassVar[dict[str, int]] = {"train": 64, "val": 16, "test": 20}
    split_lists = CIFAR_FS


class FC100Release(Cifar100Release):
    name = "fc100"
    title = "FC100"
    reference = "Oreshkin et al. 2018, TADAM: Task dependent adaptive metric for improved few-shot learning"
    split_source = "by CIFAR-100 superclass as in TADAM: 12/4/4 superclasses, 60/20/20 classes"
    expected_classes: ClassVar[dict[str, int]] = {"train": 60, "val": 20, "test": 20}
    split_lists = FC100_SUPERCLASSES
    split_by_superclass = True


class CIFARFS(ReleaseDataset):
    """One split of CIFAR-FS: 64/16/20 CIFAR-100 classes of 600 32x32 RGB images."""

    release = CifarFSRelease()


class FC100(ReleaseDataset):
    """One split of FC100: CIFAR-100 split by superclass, 60/20/20 classes of 600 32x32 RGB images."""

    release = FC100Release()


@register("dataset", "cifarfs")
@dataclass
class CIFARFSConfig(BenchmarkConfig):
    dataset = CIFARFS


@register("dataset", "fc100")
@dataclass
class FC100Config(BenchmarkConfig):
    dataset = FC100
