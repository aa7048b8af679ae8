"""Safe extraction: zip-slip, tar-slip, links, special files, size bombs, corrupt archives."""

from __future__ import annotations

import io
import random
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest
from helpers import FUZZ_SCALE, mutated, report_fuzz

from fastadapt.datasets.archives import extract
from fastadapt.errors import DataError


def _zip(
    path: Path,
    members: dict[str, bytes],
    symlinks: dict[str, str] | None = None,
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as handle:
        for name, data in members.items():
            handle.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)
            handle.writestr(info, target)
    return path


def _tar(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> Path:
    data = data or {}
    with tarfile.open(path, "w:gz") as handle:
        for info in members:
            payload = data.get(info.name)
            if payload is not None:
                info.size = len(payload)
            handle.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def test_a_good_zip_and_tar_extract_into_the_destination(tmp_path: Path) -> None:
    zipped = _zip(tmp_path / "a.zip", {"cls/a.png": b"1", "cls/sub/b.png": b"22"})
    assert (extract(zipped, tmp_path / "z") / "cls" / "sub" / "b.png").read_bytes() == b"22"
    tarred = _tar(tmp_path / "a.tar.gz", [_member("cls", tarfile.DIRTYPE), _member("cls/a.png"),
                                          _member("cls/link.png", tarfile.SYMTYPE, "a.png")], {"cls/a.png": b"1"})
    out = extract(tarred, tmp_path / "t")
    assert (out / "cls" / "a.png").read_bytes() == b"1" and (out / "cls" / "link.png").read_bytes() == b"1"


@pytest.mark.parametrize("name, message", [
    ("../evil.txt", r"outside the destination \('\.\.'\)"),
    ("cls/../../evil.txt", r"outside the destination \('\.\.'\)"),
    ("/etc/evil.txt", "absolute path"),
    ("C:/evil.txt", "absolute path"),
    ("..\\evil.txt", r"outside the destination \('\.\.'\)"),
])
def test_zip_slip_is_refused_and_nothing_is_written(tmp_path: Path, name: str, message: str) -> None:
    archive = _zip(tmp_path / "evil.zip", {"cls/ok.png": b"ok", name: b"pwned"})
    with pytest.raises(DataError, match=message):
        extract(archive, tmp_path / "out" / "dest")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()


@pytest.mark.parametrize("member, message", [
    (_member("../evil.txt"), r"'\.\.'"),
    (_member("/tmp/evil.txt"), "absolute path"),
    (_member("cls/up", tarfile.SYMTYPE, "../../outside"), "points outside"),
    (_member("cls/abs", tarfile.SYMTYPE, "/etc/passwd"), "points outside"),
    (_member("cls/hard", tarfile.LNKTYPE, "../outside"), "points outside"),
    (_member("cls/dev", tarfile.CHRTYPE), "device, FIFO"),
    (_member("cls/fifo", tarfile.FIFOTYPE), "device, FIFO"),
])
def test_tar_slip_links_and_special_files_are_refused(tmp_path: Path, member: tarfile.TarInfo, message: str) -> None:
    archive = _tar(tmp_path / "evil.tar.gz", [_member("cls/ok.png"), member], {"cls/ok.png": b"ok"})
    with pytest.raises(DataError, match=message):
        extract(archive, tmp_path / "out" / "dest")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_zip_symlink_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "link.zip", {"cls/ok.png": b"ok"}, symlinks={"cls/passwd": "/etc/passwd"})
    with pytest.raises(DataError, match="symbolic link"):
        extract(archive, tmp_path / "dest")


def test_oversized_members_are_refused_before_extraction(tmp_path: Path) -> None:
    # 10 MB of zeros compresses to ~10 kB: the limit is on the declared (inflated) size
    archive = _zip(tmp_path / "bomb.zip", {"cls/a.png": bytes(10_000_000)})
    assert archive.stat().st_size < 100_000
    with pytest.raises(DataError, match=r"would be 10000000 bytes \(limit 1000000\)"):
        extract(archive, tmp_path / "dest", max_member_bytes=1_000_000)
    many = _zip(tmp_path / "many.zip", {f"cls/{i}.png": bytes(400_000) for i in range(5)})
    with pytest.raises(DataError, match=r"total 2000000 bytes \(limit 1000000\)"):
        extract(many, tmp_path / "dest", max_member_bytes=1_000_000, max_total_bytes=1_000_000)
    assert not (tmp_path / "dest").exists()


def test_corrupt_truncated_and_foreign_files_are_one_clear_error(tmp_path: Path) -> None:
    good = _zip(tmp_path / "good.zip", {f"cls/{i}.png": bytes(range(256)) * 40 for i in range(4)}).read_bytes()
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(good[: len(good) // 2])
    text = tmp_path / "notes.zip"
    text.write_text("not an archive")
    for path in (truncated, text):
        with pytest.raises(DataError, match="not a zip or tar archive|corrupt or truncated"):
            extract(path, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_a_flipped_byte_in_a_member_is_caught_by_its_crc(tmp_path: Path) -> None:
    payload = b"fastadapt" * 1000
    raw = bytearray(_zip(tmp_path / "a.zip", {"cls/a.bin": payload}, compression=zipfile.ZIP_STORED).read_bytes())
    at = raw.find(b"fastadapt")
    assert at > 0
    raw[at] ^= 0xFF
    (tmp_path / "a.zip").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="corrupt or truncated"):
        extract(tmp_path / "a.zip", tmp_path / "dest")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]  # no half-extracted staging folder


def test_re_extraction_replaces_the_old_folder(tmp_path: Path) -> None:
    extract(_zip(tmp_path / "a.zip", {"cls/old.png": b"1"}), tmp_path / "dest")
    extract(_zip(tmp_path / "b.zip", {"cls/new.png": b"2"}), tmp_path / "dest")
    assert sorted(p.name for p in (tmp_path / "dest" / "cls").iterdir()) == ["new.png"]


FUZZ_TRIALS = 200 * FUZZ_SCALE


def test_fuzzed_archives_extract_inside_the_destination_or_fail_with_a_data_error(tmp_path: Path) -> None:
    """Damaged zip and tar archives either extract (inside the destination only) or raise
    ``DataError``; nothing else is ever created next to the destination."""
    (tmp_path / "src").mkdir()
    payload = {f"cls{c}/{i}.png": random.Random(c * 10 + i).randbytes(3000) for c in range(3) for i in range(3)}
    pristine = [_zip(tmp_path / "src" / "a.zip", payload).read_bytes(),
                _tar(tmp_path / "src" / "a.tar.gz", [_member(name) for name in payload], payload).read_bytes()]
    with tarfile.open(tmp_path / "src" / "a.tar", "w") as handle:  # uncompressed: damage reaches the headers
        for name, data in payload.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            handle.addfile(info, io.BytesIO(data))
    pristine.append((tmp_path / "src" / "a.tar").read_bytes())
    work = tmp_path / "work"
    fuzzed = refused = 0
    for trial in range(FUZZ_TRIALS):
        rng = random.Random(trial)
        data = mutated(rng, pristine[trial % 3], cut=trial % 5 == 4)
        fuzzed += len(data)
        work.mkdir()
        (work / "in.bin").write_bytes(data)
        try:
            extract(work / "in.bin", work / "out")
            files = [p for p in (work / "out").rglob("*") if p.is_file() or p.is_symlink()]
            assert all(p.resolve().is_relative_to((work / "out").resolve()) for p in files)
        except DataError:
            refused += 1
        assert {p.name for p in work.iterdir()} <= {"in.bin", "out"}
        shutil.rmtree(work)
    report_fuzz("archive extraction", FUZZ_TRIALS, fuzzed, refused)
    assert 0 < refused < FUZZ_TRIALS and fuzzed > 1_000_000 * FUZZ_SCALE
