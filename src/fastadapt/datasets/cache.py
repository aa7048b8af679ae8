"""Decoded dataset caches: one file with the uint8 images, labels and class names, memory-mapped."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path
from typing import Any

import torch

from fastadapt.datasets.base import ClassDataset
from fastadapt.errors import DataError
from fastadapt.storage import atomic_torch_save

CACHE_FORMAT = 1
CACHE_KEYS = frozenset({"format", "images", "labels", "class_names", "meta"})
# What torch.load raises on a torn, truncated or damaged file, as fuzzing it shows (tests/datasets/test_cache.py):
# its zip reader (RuntimeError, OSError), its restricted unpickler (UnpicklingError, and on damaged opcodes
# EOFError, struct.error, LookupError, TypeError, AttributeError, AssertionError) and the bytes it decodes
# (ValueError, UnicodeDecodeError). Anything else (MemoryError, ImportError, ...) is no bad file: it is raised.
UNREADABLE = (
    OSError, RuntimeError, pickle.UnpicklingError, EOFError, struct.error, LookupError, TypeError, AttributeError,
    AssertionError, ValueError,
)


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
    """The cached dataset, memory-mapped, or ``None`` if the file is absent, stale or unreadable (then the caller
    rebuilds it from the sources); any other error, a bug rather than a bad file, is raised."""
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, mmap=True, weights_only=True)
    except UNREADABLE:
        return None
    if not isinstance(blob, dict) or blob.get("format") != CACHE_FORMAT or not CACHE_KEYS <= blob.keys():
        return None  # another version's cache, or not a cache at all
    try:
        return ClassDataset(blob["images"], blob["labels"], blob["class_names"], name=name), blob["meta"]
    except DataError:  # readable but damaged content, e.g. labels that no longer match the images
        return None
