"""Safe files: atomic writes (a crash at any moment leaves the old file or the new one, never a torn one) and
folders held by one process at a time."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import torch

from fastadapt.errors import CheckpointError

try:
    import fcntl
except ImportError:  # Windows: folders are not locked there
    fcntl = None  # type: ignore[assignment]

LOCK = ".lock"  # the file whose OS lock says which process holds a folder
_held: dict[Path, int] = {}  # the folders this process holds, with how many blocks hold each


def _atomic(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write through ``write`` into a temporary file beside ``path``, fsync it, rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows it
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` atomically."""
    _atomic(path, lambda handle: torch.save(obj, handle))


def atomic_write_text(text: str, path: Path) -> None:
    """Write ``text`` to ``path`` atomically."""
    _atomic(path, lambda handle: handle.write(text.encode()))


@contextlib.contextmanager
def exclusive(folder: str | Path) -> Iterator[None]:
    """Hold ``folder`` for this process while the block runs (blocks may nest): another process asking for it
    meanwhile gets a one-line ``CheckpointError``, so two runs never write one folder. The lock is the OS's
    (``flock`` on ``folder/.lock``), so it ends with the process however the process ends."""
    key = Path(folder).resolve()
    if key in _held or fcntl is None:
        _held[key] = _held.get(key, 0) + 1
        try:
            yield
        finally:
            _held[key] -= 1
            if not _held[key]:
                del _held[key]
        return
    key.mkdir(parents=True, exist_ok=True)
    with open(key / LOCK, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise CheckpointError(
                f"{folder} is in use by another process (pid {holder}): wait for it to end or stop it, "
                "or give another run folder"
            ) from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]


def holds_files(folder: Path) -> bool:
    """Whether ``folder`` exists and holds anything besides the lock file of ``exclusive``."""
    return folder.is_dir() and any(item.name != LOCK for item in folder.iterdir())
