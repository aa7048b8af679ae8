"""The population statistics a run was tested with, kept in its folder (``population.pt``): what eval-mode batch
norm keeps in its buffers, so that ``predict`` classifies new files without the training data they came from."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fastadapt.evaluate import POPULATION_EPISODES
from fastadapt.nn.params import state_digest
from fastadapt.nn.population import Moments
from fastadapt.storage import atomic_torch_save

POPULATION_FILE = "population.pt"


def population_key(learner: nn.Module, inner_steps: int | None) -> dict[str, Any]:
    """What moments were recorded for: the learner's weights (a digest of its state, so another checkpoint, more
    training or other ensemble members never reuse them), the adaptation steps before each recorded pass and the
    number of training tasks."""
    return {"weights": state_digest(learner), "inner_steps": inner_steps, "episodes": POPULATION_EPISODES}


def store_population(run_dir: Path, moments: Moments, key: dict[str, Any]) -> None:
    """Keep ``moments`` (on the CPU) in the run folder under ``key``, replacing what was there."""
    cpu = {name: (mean.cpu(), var.cpu()) for name, (mean, var) in moments.items()}
    atomic_torch_save({"key": key, "moments": cpu}, run_dir / POPULATION_FILE)


def stored_population(run_dir: Path, key: dict[str, Any], device: torch.device) -> Moments | None:
    """The moments kept in the run folder for ``key`` (on ``device``), or None where there are none for it: none
    kept, kept for another checkpoint or number of steps, or an unreadable file (all recorded again)."""
    file = run_dir / POPULATION_FILE
    if not file.is_file():
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blob = torch.load(file, map_location="cpu", weights_only=True)
    except Exception:  # torn or foreign: the caller records them again
        return None
    if not isinstance(blob, dict) or blob.get("key") != key:
        return None
    return {name: (mean.to(device), var.to(device)) for name, (mean, var) in blob["moments"].items()}
