"""What a reproduction compares and keeps of a run: the config keys that say what is run (not where its data
lies or how a preset words itself), and the measures already taken on a trained run (``measures.json`` in its
folder), so that running a reproduction again reuses them instead of testing again."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

from torch import nn

from fastadapt.config import RunConfig, flatten
from fastadapt.evaluate import POPULATION_EPISODES
from fastadapt.nn.params import state_digest
from fastadapt.storage import atomic_write_text

MACHINE_KEYS = ("dataset.data_dir", "dataset.download")  # where the data is, not what is run
WORDING_KEYS = ("description",)  # how a preset describes itself, not what is run
MEASURES_FILE = "measures.json"
MEASURE_PROTOCOL = 1  # raise it when a change to the test code changes what a measure gives: older ones are retaken
FIELDS = ("value", "ci95", "episodes")


def run_settings(config: RunConfig) -> dict[str, Any]:
    """The flattened config of a run but for where its data is and how its preset words itself."""
    ignored = {*MACHINE_KEYS, *WORDING_KEYS}
    return {key: value for key, value in flatten(config.to_dict()).items() if key not in ignored}


def measure_key(learner: nn.Module, config: RunConfig, split: str) -> str:
    """What a measure was taken on: the learner's weights (their digest), the settings it was tested under, the
    split and the version of the test code; equal keys give equal measures, since test tasks are a fixed sequence."""
    what = {"weights": state_digest(learner), "settings": run_settings(config), "split": split,
            "protocol": MEASURE_PROTOCOL, "population_episodes": POPULATION_EPISODES}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


def kept_measure(run_dir: Path, key: str) -> dict[str, Any] | None:
    """The measure kept in the run folder under ``key``, or None (none kept, or an unreadable file or entry)."""
    found = (_read(run_dir) or {}).get(key)
    return found if isinstance(found, dict) and all(field in found for field in FIELDS) else None


def keep_measure(run_dir: Path, key: str, value: dict[str, Any]) -> None:
    """Add ``value`` under ``key`` to the run folder's kept measures; where the folder cannot be written (or its file
    read), warn and go on: the measure is in the report all the same, and taken again next time."""
    kept = _read(run_dir)
    problem = f"{run_dir / MEASURES_FILE} cannot be read" if kept is None else None
    if kept is not None:
        try:
            atomic_write_text(json.dumps({**kept, key: value}, indent=2) + "\n", run_dir / MEASURES_FILE)
        except OSError as error:
            problem = str(error)
    if problem is not None:
        warnings.warn(f"measure not kept ({problem}): the next reproduce takes it again", stacklevel=2)


def _read(run_dir: Path) -> dict[str, Any] | None:
    """The kept measures: ``{}`` where none are kept or the file is damaged (all taken again), None where the file
    exists but cannot be read (left as it is)."""
    try:
        kept = json.loads((run_dir / MEASURES_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    except OSError:
        return None
    return kept if isinstance(kept, dict) else {}
