"""Decoded dataset caches: one file with the uint8 images, labels and class names, memory-mapped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fastadapt.datasets.base import ClassDataset
from fastadapt.storage import atomic_torch_save

CACHE_FORMAT = 1


def save_cache(path: Path, dataset: ClassDataset, meta: dict[str, Any]) -> None:
    """Store a decoded dataset (and facts about its source in ``meta``) for later runs."""
    atomic_torch_save(
        {
            "format": CACHE_FORMAT,
            "images": dataset.images.contiguous(),
            "labels": dataset.labels,
            "class_names": dataset.class_names,
            "meta": meta,
        },
        path,
    )


def load_cache(path: Path, name: str) -> tuple[ClassDataset, dict[str, Any]] | None:
    """The cached dataset, memory-mapped, or ``None`` if the file is absent, stale or unreadable."""
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, mmap=True, weights_only=True)
        if blob.get("format") != CACHE_FORMAT:
            return None
        return ClassDataset(blob["images"], blob["labels"], blob["class_names"], name=name), blob["meta"]
    except Exception:  # a torn or foreign file: rebuild it from the sources
        return None
