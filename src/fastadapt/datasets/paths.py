"""Where datasets live: ``--data-dir``, else ``$FASTADAPT_DATA``, else the per-user cache folder."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import platformdirs

ENV_VAR = "FASTADAPT_DATA"


def data_root(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder under which each dataset has its own subfolder (``<root>/omniglot/``, ...)."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return Path(platformdirs.user_cache_dir("fastadapt")) / "data"


def _writable(folder: Path) -> bool:
    """Writable by us and not marked read-only (root may write anywhere, but a r-x folder is meant to stay as is)."""
    mode = folder.stat().st_mode
    return os.access(folder, os.W_OK) and bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def writable_dir(preferred: Path, fallback_name: str) -> Path:
    """``preferred`` if it can be created and written to, else a folder in the per-user cache.

    Decoded caches go next to the data where possible; a read-only data folder (a shared copy of
    a dataset) still gets a cache, in the user's own cache folder, one per data folder.
    """
    try:
        preferred.mkdir(parents=True, exist_ok=True)
        if _writable(preferred):
            return preferred
    except OSError:
        pass
    key = hashlib.sha1(str(preferred.resolve()).encode()).hexdigest()[:10]
    fallback = Path(platformdirs.user_cache_dir("fastadapt")) / "decoded" / f"{fallback_name}-{key}"
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback
