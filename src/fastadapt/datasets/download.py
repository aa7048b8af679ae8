"""Downloads that resume, show progress and are verified by checksum before anything uses them."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from fastadapt.errors import DataError

CHUNK = 1 << 20


def file_hash(path: Path, algorithm: str = "md5") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(
    url: str, destination: Path, md5: str | None = None, sha256: str | None = None, progress: bool = True
) -> Path:
    """Fetch ``url`` to ``destination``, resuming a partial ``.part`` file, and verify its checksum.

    The file appears under its final name only once it is complete and verified; a mismatch
    deletes the partial file and raises ``DataError``.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    offset = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            if offset and getattr(response, "status", None) != 206:  # the range was ignored: start over
                offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) + offset if length else None
            with (
                open(partial, "ab" if offset else "wb") as out,
                tqdm(
                    total=total, initial=offset, unit="B", unit_scale=True, desc=destination.name,
                    disable=None if progress else True,
                ) as bar,
            ):
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError) as error:
        raise DataError(
            f"could not download {url}: {error}. Check the network, or download it by hand to {destination}"
        ) from None
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected and file_hash(partial, algorithm) != expected:
            partial.unlink(missing_ok=True)
            raise DataError(
                f"download of {url} failed its {algorithm} check (expected {expected}); it was deleted, try again"
            )
    os.replace(partial, destination)
    return destination
