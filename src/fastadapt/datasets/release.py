"""The standard few-shot benchmarks as published releases: where each comes from, how it is checked,
decoded once into a memory-mapped cache, and split into its published train/val/test classes.

Each benchmark module describes its release with a ``Release`` subclass (files, mirrors, published
checksums, how to decode them, which classes form which split). Everything else — locating the
files, downloading with resume, checking, caching, reporting — lives here once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from fastadapt.datasets.base import ClassDataset
from fastadapt.datasets.cache import load_cache, save_cache
from fastadapt.datasets.download import download, file_hash
from fastadapt.datasets.imageconfig import ImageDatasetConfig
from fastadapt.datasets.images import Preprocessing, check_image_size
from fastadapt.datasets.paths import data_root, writable_dir
from fastadapt.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Source:
    """One file of a release: its name on disk, where it is published, its published checksums."""

    filename: str
    urls: tuple[str, ...] = ()
    md5: str | None = None
    sha256: str | None = None

    @property
    def published_checksum(self) -> tuple[str, str] | None:
        if self.sha256:
            return "sha256", self.sha256
        if self.md5:
            return "md5", self.md5
        return None


@dataclass
class Decoded:
    """A release decoded: uint8 images ``[n, C, H, W]``, a label per image, a name per class, and
    per-class facts (``split``, ``superclass``, ...) that decide the class splits."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    class_info: dict[str, list[str]] = field(default_factory=dict)


class Release:
    """What a benchmark module tells the shared machinery about its release."""

    name: ClassVar[str]  # as in `fastadapt data info NAME` and `dataset.name`
    folder: ClassVar[str]  # subfolder of the data root holding the release files
    title: ClassVar[str]
    reference: ClassVar[str]  # the paper that defined the benchmark
    split_source: ClassVar[str]  # where the class split comes from
    sources: ClassVar[tuple[Source, ...]]
    image_size: ClassVar[int]  # the size the papers use
    channels: ClassVar[int] = 3
    # Classes per split that a complete release has; checked after decoding.
    expected_classes: ClassVar[dict[str, int]]
    cache_name: ClassVar[str | None] = None  # releases that share files (CIFAR-FS, FC100) share a cache

    def present(self, folder: Path) -> bool:
        """True if the release's files (archives or their extracted form) are in ``folder``."""
        raise NotImplementedError

    def decode(self, folder: Path, image_size: int, source: Path | None = None) -> Decoded:
        """Decode the release in ``folder`` (or in ``source``, a copy the user already has)."""
        raise NotImplementedError

    def class_splits(self, class_names: Sequence[str], class_info: dict[str, list[str]]) -> list[str]:
        """The split of each class (``train``/``val``/``test``); by default the decoded ``split`` fact."""
        return list(class_info["split"])

    def check(self, splits: Sequence[str], where: Path) -> None:
        """A complete release has the published number of classes in each split; say what is missing."""
        counts = {s: sum(1 for x in splits if x == s) for s in self.expected_classes}
        if counts != dict(self.expected_classes):
            raise DataError(
                f"{where} is not the complete {self.title}: classes per split {counts}, expected "
                f"{dict(self.expected_classes)}; delete the damaged files and fetch them again "
                f"(`fastadapt data verify {self.name}`)"
            )

    def missing_message(self, folder: Path) -> str:
        names = ", ".join(s.filename for s in self.sources)
        how = (
            f"download it with download=True (CLI: --download or `fastadapt data prepare {self.name} --download`), or "
        )
        if not any(s.urls for s in self.sources):
            how = ""
        return (
            f"{self.title} is not in {folder}: {how}copy {names} into that folder "
            f"(`fastadapt data info {self.name}` says where each comes from)"
        )


def dataset_folder(release: Release, root: str | os.PathLike[str] | None) -> Path:
    return data_root(root) / release.folder


def cache_path(
    release: Release,
    root: str | os.PathLike[str] | None,
    image_size: int,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    folder = dataset_folder(release, root)
    cache_folder = Path(cache_dir) if cache_dir is not None else writable_dir(folder, release.folder)
    return cache_folder / f"{release.cache_name or release.name}-{image_size}px.pt"


def fetch(release: Release, folder: Path, progress: bool = True) -> None:
    """Download every missing source file, trying each mirror in turn; checksums are checked where published."""
    for source in release.sources:
        target = folder / source.filename
        if target.is_file():
            continue
        if not source.urls:
            raise DataError(release.missing_message(folder))
        errors = []
        for url in source.urls:
            try:
                download(url, target, md5=source.md5, sha256=source.sha256, progress=progress)
                break
            except DataError as error:
                errors.append(str(error))
        else:
            raise DataError(f"every mirror of {source.filename} failed: " + " | ".join(errors))


def load_release(
    release: Release,
    root: str | os.PathLike[str] | None = None,
    image_size: int | None = None,
    download: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    source: str | os.PathLike[str] | None = None,
    rebuild: bool = False,
) -> tuple[ClassDataset, dict[str, list[str]]]:
    """The whole release as one ``ClassDataset`` (plus per-class facts), decoding it on first use.

    The decoded images are written atomically to a cache file that later runs memory-map; a
    release that fails any check raises ``DataError`` before anything is written.
    """
    size = release.image_size if image_size is None else image_size
    check_image_size(size)
    cache_file = cache_path(release, root, size, cache_dir)
    if not rebuild:
        cached = load_cache(cache_file, release.name)
        if cached is not None and "class_info" in cached[1]:
            return cached[0], cached[1]["class_info"]
    folder = dataset_folder(release, root)
    source_path = Path(source).expanduser() if source is not None else None
    if source_path is not None and not source_path.is_dir():
        raise DataError(
            f"--source {source_path} is not a folder: give the folder that holds your copy of {release.title}'s files"
        )
    if source_path is None and not release.present(folder):
        if not download:
            raise DataError(release.missing_message(folder))
        fetch(release, folder)
    decoded = release.decode(folder, size, source_path)
    release.check(release.class_splits(decoded.class_names, decoded.class_info), source_path or folder)
    dataset = ClassDataset(
        torch.from_numpy(decoded.images), torch.from_numpy(decoded.labels), decoded.class_names, name=release.name
    )
    meta = {"class_info": decoded.class_info, "image_size": size, "source": str(source_path or folder)}
    save_cache(cache_file, dataset, meta)
    return dataset, decoded.class_info


def split_rows(release: Release, dataset: ClassDataset, class_info: dict[str, list[str]], split: str) -> ClassDataset:
    """The classes of one split (``train``, ``val``, ``test``, ``trainval`` or ``all``)."""
    splits = release.class_splits(dataset.class_names, class_info)
    wanted = {"trainval": ("train", "val"), "all": SPLITS}.get(split, (split,))
    keep = [i for i, s in enumerate(splits) if s in wanted]
    return dataset.subset(keep, name=f"{release.name}-{split}")


class ReleaseDataset(ClassDataset):
    """One split of a benchmark release, memory-mapped from its decoded cache."""

    release: ClassVar[Release]

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "train",
        image_size: int | None = None,
        download: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        choices = (*SPLITS, "trainval", "all")
        if split not in choices:
            raise ConfigError(f"unknown {self.release.title} split {split!r}; choose one of {choices}")
        full, info = load_release(self.release, root, image_size, download, cache_dir)
        chosen = split_rows(self.release, full, info, split)
        super().__init__(chosen.images, chosen.labels, chosen.class_names, chosen.name)
        self.split = split
        position = {n: i for i, n in enumerate(full.class_names)}
        self.class_info = {key: [values[position[n]] for n in chosen.class_names] for key, values in info.items()}


def source_status(release: Release, folder: Path, checksums: bool = False) -> list[dict[str, Any]]:
    """For each source file: present or not, its size, and (with ``checksums``) whether it matches."""
    rows = []
    for source in release.sources:
        path = folder / source.filename
        row: dict[str, Any] = {
            "file": source.filename,
            "present": path.is_file(),
            "bytes": path.stat().st_size if path.is_file() else None,
            "urls": list(source.urls),
            "published": source.published_checksum,
        }
        if checksums and path.is_file():
            published = source.published_checksum
            if published is None:
                row["checksum"] = "no published checksum (checked by structure when decoded)"
            else:
                actual = file_hash(path, published[0])
                damaged = f"differs from the published {published[0]} (a rebuilt or damaged copy)"
                row["checksum"] = "ok" if actual == published[1] else damaged
        rows.append(row)
    return rows


@dataclass
class BenchmarkConfig(ImageDatasetConfig):
    """A standard benchmark read from its release (``download`` fetches a missing one from its official source)."""

    dataset: ClassVar[type[ReleaseDataset]]
    data_dir: str | None = None
    download: bool = False

    def validate(self) -> None:
        if self.image_size is None:
            self.image_size = self.dataset.release.image_size

    def classes(self, split: str) -> ReleaseDataset:
        return self.dataset(self.data_dir, split=split, image_size=self.size, download=self.download)

    def preprocessing(self) -> Preprocessing:
        return Preprocessing(self.size, self.dataset.release.channels)
