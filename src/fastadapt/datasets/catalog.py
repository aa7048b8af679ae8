"""The benchmarks fastadapt knows by name, and what `fastadapt data list|info|prepare|verify` reports."""

from __future__ import annotations

import os
import time
from typing import Any

from fastadapt.datasets import omniglot
from fastadapt.datasets.cifar import CIFARFS, FC100
from fastadapt.datasets.cub import CUB
from fastadapt.datasets.miniimagenet import MiniImageNet
from fastadapt.datasets.release import SPLITS, Release, cache_path, dataset_folder, load_release, source_status
from fastadapt.datasets.tieredimagenet import TieredImageNet
from fastadapt.errors import ConfigError, did_you_mean

RELEASES: dict[str, Release] = {
    r.name: r
    for r in (
        omniglot.RELEASE, MiniImageNet.release, TieredImageNet.release, CIFARFS.release, FC100.release, CUB.release
    )
}


def release(name: str) -> Release:
    if name not in RELEASES:
        raise ConfigError(f"unknown dataset {name!r}{did_you_mean(name, RELEASES)} (known: {', '.join(RELEASES)})")
    return RELEASES[name]


def _caches(item: Release, root: str | os.PathLike[str] | None) -> list[dict[str, Any]]:
    folder = cache_path(item, root, item.image_size).parent
    files = sorted(folder.glob(f"{item.cache_name or item.name}-*px.pt"))
    return [{"file": str(f), "bytes": f.stat().st_size} for f in files]


def info(name: str, root: str | os.PathLike[str] | None = None, checksums: bool = False) -> dict[str, Any]:
    """Where a benchmark lives, which of its files are present (and, with ``checksums``, whether they
    match the published ones), its decoded caches, its split and where the split comes from."""
    item = release(name)
    folder = dataset_folder(item, root)
    return {
        "name": item.name,
        "title": item.title,
        "reference": item.reference,
        "folder": str(folder),
        "present": item.present(folder),
        "sources": source_status(item, folder, checksums),
        "caches": _caches(item, root),
        "classes": dict(item.expected_classes),
        "image_size": item.image_size,
        "split_source": item.split_source,
    }


def listing(root: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """One line of facts per known benchmark."""
    return [info(name, root) for name in RELEASES]


def prepare(
    name: str,
    root: str | os.PathLike[str] | None = None,
    image_size: int | None = None,
    download: bool = False,
    source: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Decode a benchmark into its cache (downloading it if allowed); what was built, and how long it took."""
    item = release(name)
    start = time.perf_counter()
    dataset, class_info = load_release(
        item, root, image_size, download, source=source, rebuild=force or source is not None
    )
    splits = item.class_splits(dataset.class_names, class_info)
    counts = {s: {"classes": 0, "images": 0} for s in SPLITS}
    for index, split in enumerate(splits):
        counts[split]["classes"] += 1
        counts[split]["images"] += int(dataset.counts[index])
    size = image_size or item.image_size
    return {
        "name": item.name,
        "cache": str(cache_path(item, root, size)),
        "images": len(dataset),
        "shape": list(dataset.image_shape),
        "splits": counts,
        "seconds": time.perf_counter() - start,
    }


def verify(name: str, root: str | os.PathLike[str] | None = None, image_size: int | None = None) -> dict[str, Any]:
    """Check the files against their published checksums, then decode them again and check their structure."""
    report = info(name, root, checksums=True)
    report["decoded"] = prepare(name, root, image_size, force=True)
    return report
