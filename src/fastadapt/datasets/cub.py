"""CUB-200-2011 (Wah et al. 2011) as a few-shot benchmark: 200 bird species, 11,788 images, with the
split of Chen et al. 2019 (A Closer Look at Few-shot Classification): of the species in sorted
folder order, every even one trains, those at 1 mod 4 validate, those at 3 mod 4 test (100/50/50).

Images are cropped as Chen et al. evaluate them: resized to 96x96, center 84x84 kept; here the
same crop is taken from the original image (the central 84/96 of each side) and resized once. The
release is ``CUB_200_2011.tgz`` (``images.txt``, ``classes.txt``, ``image_class_labels.txt`` and
``images/<class>/<file>.jpg``), read from its extracted folder or extracted safely on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from fastadapt.components import register
from fastadapt.datasets.archives import extract
from fastadapt.datasets.images import Preprocessing, decode_images
from fastadapt.datasets.release import BenchmarkConfig, Decoded, Release, ReleaseDataset, Source
from fastadapt.errors import DataError

ARCHIVE = "CUB_200_2011.tgz"
TOP = "CUB_200_2011"
MARGIN = (1 - 84 / 96) / 2
CENTER_CROP = (MARGIN, MARGIN, 1 - MARGIN, 1 - MARGIN)


def chen_split(index: int) -> str:
    """Chen et al.'s split of the species at ``index`` (0-based, in sorted folder order)."""
    if index % 2 == 0:
        return "train"
    return "val" if index % 4 == 1 else "test"


def _table(path: Path, columns: int) -> dict[str, list[str]]:
    """``id -> fields`` of one of CUB's space-separated text files."""
    if not path.is_file():
        raise DataError(f"{path} is missing: the CUB_200_2011 folder is incomplete; fetch the release again")
    table: dict[str, list[str]] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split(maxsplit=columns - 1)
        if len(fields) != columns:
            raise DataError(f"{path}:{number}: expected {columns} fields, got {line!r}")
        table[fields[0]] = fields[1:]
    return table


class CUBRelease(Release):
    name = "cub"
    folder = "cub"
    title = "CUB-200-2011"
    reference = "Wah et al. 2011, The Caltech-UCSD Birds-200-2011 Dataset; few-shot split of Chen et al. 2019"
    split_source = (
        "Chen et al. 2019 (CloserLookFewShot write_CUB_filelist.py): sorted species, "
        "i%2==0 train, i%4==1 val, i%4==3 test"
    )
    sources = (
        Source(
            ARCHIVE,
            (
                "https://data.caltech.edu/records/65de6-vvk30/files/CUB_200_2011.tgz",
                "https://zenodo.org/record/8000562/files/CUB_200_2011.tgz",
            ),
            md5="97eceeb196236b17998738112f37df78",
        ),
    )
    image_size = 84
    expected_classes: ClassVar[dict[str, int]] = {"train": 100, "val": 50, "test": 50}

    def present(self, folder: Path) -> bool:
        return (folder / TOP).is_dir() or (folder / ARCHIVE).is_file()

    def decode(self, folder: Path, image_size: int, source: Path | None = None) -> Decoded:
        where = source or folder
        top = where / TOP if (where / TOP).is_dir() else where if (where / "images.txt").is_file() else None
        if top is None and (where / ARCHIVE).is_file():
            extract(where / ARCHIVE, folder / "extracted")
            top = folder / "extracted" / TOP
        if top is None or not top.is_dir():
            raise DataError(f"{where} holds neither {TOP}/ nor {ARCHIVE}")
        classes = _table(top / "classes.txt", 2)
        images = _table(top / "images.txt", 2)
        labels = _table(top / "image_class_labels.txt", 2)
        names = sorted(c[0] for c in classes.values())
        position = {n: i for i, n in enumerate(names)}
        class_of_id = {k: v[0] for k, v in classes.items()}
        paths, rows = [], []
        for image_id, (relative,) in images.items():
            if image_id not in labels or labels[image_id][0] not in class_of_id:
                raise DataError(
                    f"{top}: image {image_id} ({relative}) has no class in image_class_labels.txt/classes.txt"
                )
            name = class_of_id[labels[image_id][0]]
            if relative.split("/")[0] != name:
                raise DataError(f"{top}: image {relative} is filed under another class than its label {name}")
            paths.append(top / "images" / relative)
            rows.append(position[name])
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise DataError(
                f"{len(missing)} images listed in images.txt are missing from {top / 'images'}, e.g. {missing[0]}"
            )
        empty = sorted(set(names) - {names[r] for r in rows})
        if empty:
            raise DataError(f"{top}: {len(empty)} classes have no images, e.g. {empty[0]}")
        decoded = decode_images(paths, Preprocessing(image_size, 3), boxes=[CENTER_CROP] * len(paths), progress=True)
        splits = [chen_split(i) for i in range(len(names))]
        return Decoded(decoded, np.asarray(rows, dtype=np.int64), names, {"split": splits})


class CUB(ReleaseDataset):
    """One split of CUB-200-2011 (Chen et al.): 100/50/50 bird species, 84x84 center crops."""

    release = CUBRelease()


@register("dataset", "cub")
@dataclass
class CUBConfig(BenchmarkConfig):
    dataset = CUB
