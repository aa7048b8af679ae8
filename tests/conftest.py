"""Shared fixtures: the real Omniglot in ../shared/data, decoded once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(os.environ.get("FASTADAPT_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder that holds ``omniglot/`` with the official zips (read-only)."""
    if not (SHARED_DATA / "omniglot" / "images_background.zip").is_file():
        pytest.skip(f"the reference Omniglot is not at {SHARED_DATA}/omniglot (set FASTADAPT_TEST_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def omniglot_cache(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder in which the full Omniglot has been decoded (28x28) once for the session."""
    from fastadapt.datasets.omniglot import load_omniglot

    cache = tmp_path_factory.mktemp("omniglot-cache")
    load_omniglot(shared_data, image_size=28, cache_dir=cache)
    return cache


@pytest.fixture(scope="session")
def glyphs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root in which the embedded glyphs dataset has been rendered (28x28) once for the session."""
    from fastadapt.datasets.glyphs import load_glyphs

    root = tmp_path_factory.mktemp("glyphs-root")
    load_glyphs(root, image_size=28)
    return root


@pytest.fixture(autouse=True)
def _seed_and_isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Seed torch, and keep each test's default data root and user caches inside its tmp folder."""
    torch.manual_seed(0)
    monkeypatch.setenv("FASTADAPT_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
