"""Where datasets live: ``--data-dir``, else ``$FASTADAPT_DATA``, else the per-user cache folder."""

from __future__ import annotations

import os
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


def writable_dir(preferred: Path, fallback_name: str) -> Path:
    """``preferred`` if it can be created and written to, else a folder in the per-user cache.

    Decoded caches go next to the data where possible; a read-only data folder (a shared copy of
    a dataset) still gets a cache, in the user's own cache folder.
    """
    try:
        preferred.mkdir(parents=True, exist_ok=True)
        if os.access(preferred, os.W_OK):
            return preferred
    except OSError:
        pass
    fallback = Path(platformdirs.user_cache_dir("fastadapt")) / "decoded" / fallback_name
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback
