"""The data root and where decoded caches go."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastadapt.datasets.paths import data_root, writable_dir


def test_data_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FASTADAPT_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "flag") == tmp_path / "flag"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("FASTADAPT_DATA")
    assert data_root() == tmp_path / "cache" / "fastadapt" / "data"  # XDG_CACHE_HOME from conftest


def test_caches_go_next_to_writable_data(tmp_path: Path) -> None:
    assert writable_dir(tmp_path / "omniglot", "omniglot") == tmp_path / "omniglot"


def test_read_only_data_gets_a_cache_in_the_user_folder(tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "omniglot"
    shared.mkdir(parents=True)
    shared.chmod(0o555)
    try:
        cache = writable_dir(shared, "omniglot")
        assert cache != shared and cache.is_relative_to(tmp_path / "cache") and cache.is_dir()
        assert writable_dir(shared, "omniglot") == cache
    finally:
        shared.chmod(0o755)
