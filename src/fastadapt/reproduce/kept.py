"""What a reproduction compares and keeps of a run: the config keys that say what is run (not where its data
lies or how a preset words itself), and the measures already taken on a trained run (``measures.json`` in its
folder), so that running a reproduction again reuses them instead of testing again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from torch import nn

from fastadapt.config import RunConfig, flatten
from fastadapt.nn.params import state_digest
from fastadapt.storage import atomic_write_text

MACHINE_KEYS = ("dataset.data_dir", "dataset.download")  # where the data is, not what is run
WORDING_KEYS = ("description",)  # how a preset describes itself, not what is run
MEASURES_FILE = "measures.json"


def run_settings(config: RunConfig) -> dict[str, Any]:
    """The flattened config of a run but for where its data is and how its preset words itself."""
    ignored = {*MACHINE_KEYS, *WORDING_KEYS}
    return {key: value for key, value in flatten(config.to_dict()).items() if key not in ignored}


def measure_key(learner: nn.Module, config: RunConfig, split: str) -> str:
    """What a measure was taken on: the learner's weights (their digest), the settings it was tested under and the
    split; equal keys give equal measures, since test tasks are a fixed sequence."""
    what = {"weights": state_digest(learner), "settings": run_settings(config), "split": split}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def kept_measure(run_dir: Path, key: str) -> dict[str, Any] | None:
    """The measure kept in the run folder under ``key``, or None (none kept, or an unreadable file)."""
    kept = _read(run_dir)
    found = kept.get(key)
    return found if isinstance(found, dict) else None


def keep_measure(run_dir: Path, key: str, value: dict[str, Any]) -> None:
    """Add ``value`` under ``key`` to the run folder's kept measures."""
    kept = _read(run_dir)
    kept[key] = value
    atomic_write_text(json.dumps(kept, indent=2) + "\n", run_dir / MEASURES_FILE)


def _read(run_dir: Path) -> dict[str, Any]:
    try:
        kept = json.loads((run_dir / MEASURES_FILE).read_text())
    except (OSError, ValueError):  # none kept yet, or a damaged file: measured again
        return {}
    return kept if isinstance(kept, dict) else {}
