"""Checkpoints: everything a run needs to continue exactly, written atomically, loaded safely."""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastadapt.errors import CheckpointError
from fastadapt.storage import atomic_torch_save
from fastadapt.version import __version__

FORMAT = "fastadapt-checkpoint"
SCHEMA_VERSION = 1


def rng_state() -> dict[str, Any]:
    """The global random states of torch (CPU and CUDA), numpy and Python, in plain containers."""
    mt = np.random.get_state(legacy=False)  # the fields of the legacy tuple, by name
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": mt["bit_generator"], "keys": torch.from_numpy(mt["state"]["key"].astype(np.int64)),
                  "position": mt["state"]["pos"], "has_gauss": mt["has_gauss"], "cached": mt["gauss"]},
        "python": [version, list(internal), gauss_next],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["position"], n["has_gauss"], n["cached"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def save_checkpoint(path: Path, **content: Any) -> None:
    """Write a checkpoint atomically; ``content`` holds the model, optimizer, step, RNG states, ..."""
    atomic_torch_save({"format": FORMAT, "schema": SCHEMA_VERSION, "fastadapt_version": __version__, **content}, path)


def load_checkpoint(path: str | Path, expect: str | None = None) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (no code runs) and check that it is one of ours.

    ``expect`` names the algorithm the caller will load it into; a checkpoint of another one is
    refused with a message saying what it is.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: give a run folder or a .pt file that exists")
    try:
        with warnings.catch_warnings():  # torch warns about odd pickles before refusing them
            warnings.simplefilter("ignore")
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torn, foreign or malicious files all end here
        raise CheckpointError(f"{path} is not a readable fastadapt checkpoint: {str(error).splitlines()[0]}") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a fastadapt checkpoint (it is a torch file of another kind)")
    if blob.get("schema") != SCHEMA_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint schema {blob.get('schema')} "
            f"(written by fastadapt {blob.get('fastadapt_version')}); this fastadapt reads schema {SCHEMA_VERSION}"
        )
    if expect is not None and blob.get("algorithm") != expect:
        raise CheckpointError(
            f"{path} is a {blob.get('algorithm')} checkpoint (step {blob.get('step')}, fastadapt "
            f"{blob.get('fastadapt_version')}); it cannot be loaded into {expect}"
        )
    blob["path"] = str(path)
    return blob
