"""Safe extraction of zip and tar archives: nothing lands outside the destination folder.

An archive from the internet or a colleague may carry absolute paths, ``..`` components, links
pointing elsewhere, device files, or members that inflate to gigabytes. Every member is checked
before anything is written, and the whole archive is refused if one fails.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path

from fastadapt.errors import DataError

MAX_MEMBER_BYTES = 1 << 30  # 1 GiB
MAX_TOTAL_BYTES = 64 << 30  # 64 GiB
# What the zip, tar and decompression modules raise for damaged input (found by fuzzing): a flipped
# flag bit reads as "encrypted" (RuntimeError) or an unsupported method (NotImplementedError).
ARCHIVE_ERRORS = (
    zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, EOFError, OSError, zlib.error,
    NotImplementedError, RuntimeError, ValueError, UnicodeDecodeError,
)
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _safe_name(archive: Path, name: str) -> str:
    """The member's path relative to the destination, or DataError if it could escape it."""
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        raise DataError(f"{archive}: member {name!r} has an absolute path; refusing to extract this archive")
    parts = [p for p in normalized.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DataError(
            f"{archive}: member {name!r} points outside the destination ('..'); refusing to extract this archive"
        )
    return "/".join(parts)


def _check_sizes(archive: Path, sizes: list[tuple[str, int]], max_member: int, max_total: int) -> None:
    total = 0
    for name, size in sizes:
        if size > max_member:
            raise DataError(
                f"{archive}: member {name!r} would be {size} bytes (limit {max_member}); refusing to extract"
            )
        total += size
    if total > max_total:
        raise DataError(f"{archive}: members would total {total} bytes (limit {max_total}); refusing to extract")


def _zip_members(archive: Path, max_member: int, max_total: int) -> None:
    with zipfile.ZipFile(archive) as handle:
        infos = handle.infolist()
        for info in infos:
            _safe_name(archive, info.filename)
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise DataError(
                    f"{archive}: member {info.filename!r} is a symbolic link; refusing to extract this archive"
                )
        _check_sizes(archive, [(i.filename, i.file_size) for i in infos], max_member, max_total)


def _tar_members(archive: Path, max_member: int, max_total: int) -> list[tarfile.TarInfo]:
    with tarfile.open(archive) as handle:
        members = handle.getmembers()
    for member in members:
        name = _safe_name(archive, member.name)
        if member.issym() or member.islnk():
            # a symlink is resolved from its own folder, a hard link from the archive root
            target = member.linkname
            base = posixpath.dirname(name) if member.issym() else ""
            resolved = posixpath.normpath(posixpath.join(base, target))
            if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
                raise DataError(
                    f"{archive}: link {member.name!r} points outside the destination ({target!r}); refusing to extract"
                )
        elif not (member.isfile() or member.isdir()):
            raise DataError(
                f"{archive}: member {member.name!r} is a device, FIFO or other special file; refusing to extract"
            )
    _check_sizes(archive, [(m.name, m.size) for m in members if m.isfile()], max_member, max_total)
    return members


def extract(
    archive: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    max_member_bytes: int = MAX_MEMBER_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
) -> Path:
    """Check every member of a zip or tar archive, then extract it into ``destination``.

    Extraction goes to a temporary folder beside ``destination`` that is renamed into place at the
    end, so an interrupted or refused extraction leaves nothing half-written behind.
    """
    archive, destination = Path(archive), Path(destination)
    try:
        if zipfile.is_zipfile(archive):
            _zip_members(archive, max_member_bytes, max_total_bytes)
            opener = "zip"
        elif tarfile.is_tarfile(archive):
            members = _tar_members(archive, max_member_bytes, max_total_bytes)
            opener = "tar"
        else:
            raise DataError(f"{archive} is not a zip or tar archive (or it is corrupt or truncated)")
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
        try:
            if opener == "zip":
                with zipfile.ZipFile(archive) as handle:
                    handle.extractall(staging)
            else:
                with tarfile.open(archive) as handle:
                    if hasattr(tarfile, "data_filter"):
                        # Python's own "data" filter, where it has one, re-checks what we checked above
                        handle.extractall(staging, members=members, filter="data")
                    else:
                        handle.extractall(staging, members=members)
            if destination.exists():
                shutil.rmtree(destination)
            os.replace(staging, destination)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    except ARCHIVE_ERRORS as error:
        raise DataError(f"{archive} cannot be extracted ({error}): it is corrupt or truncated") from None
    return destination
